// Package testutil keeps the names revkit's older unit tests use; the
// helpers themselves live in the public test kit, revkittest.
package testutil

import (
	"github.com/revkit/revkit/revkittest"
)

// Faker is revkittest.Faker.
type Faker = revkittest.Faker

// Writes is revkittest.Writes.
func Writes(f Faker) []string { return revkittest.Writes(f) }

// Patches is revkittest.Patches.
func Patches(f Faker) []string { return revkittest.Patches(f) }

// FailOnce makes the first verb on resource fail with err.
func FailOnce(f Faker, verb, resource string, err error) { revkittest.FailNth(f, verb, resource, 1, err) }

// FailAlways is revkittest.FailAlways.
func FailAlways(f Faker, verb, resource string, err error) { revkittest.FailAlways(f, verb, resource, err) }
