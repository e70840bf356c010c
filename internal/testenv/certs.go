package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// pki is the key material of one environment, written as PEM files.
type pki struct {
	CACertPEM   []byte
	CACertFile  string
	ServingCert string // apiserver serving cert and key files
	ServingKey  string
	SAKeyFile   string // service-account signing key (ECDSA P-256)
	SAPubFile   string
	Token       string // bearer token of the system:masters user
	TokenFile   string
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func newPKI(dir string) (*pki, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "revkit-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}

	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}

	p := &pki{
		CACertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CACertFile:  dir + "/ca.crt",
		ServingCert: dir + "/apiserver.crt",
		ServingKey:  dir + "/apiserver.key",
		SAKeyFile:   dir + "/sa.key",
		SAPubFile:   dir + "/sa.pub",
		Token:       hex.EncodeToString(tok),
		TokenFile:   dir + "/tokens.csv",
	}
	if err := os.WriteFile(p.CACertFile, p.CACertPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writePEM(p.ServingCert, "CERTIFICATE", srvDER); err != nil {
		return nil, err
	}
	if err := writePEM(p.ServingKey, "EC PRIVATE KEY", srvKeyDER); err != nil {
		return nil, err
	}
	if err := writePEM(p.SAKeyFile, "EC PRIVATE KEY", saKeyDER); err != nil {
		return nil, err
	}
	if err := writePEM(p.SAPubFile, "PUBLIC KEY", saPubDER); err != nil {
		return nil, err
	}
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,\"%s\"\n", p.Token, AdminUser, "revkit-admin", "system:masters")
	if err := os.WriteFile(p.TokenFile, []byte(line), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// AdminUser is the name of the system:masters user whose token the admin
// kubeconfig carries.
const AdminUser = "revkit-admin"
