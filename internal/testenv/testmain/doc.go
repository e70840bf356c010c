// Package testmain only holds tests: it shows and checks testenv.RunMain, one
// control plane shared by every test of a binary.
package testmain
