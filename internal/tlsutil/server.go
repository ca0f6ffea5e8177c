package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Server certificate files LoadOrCreateServerCert keeps in its directory.
const (
	ServerCertFile = "cert.pem"
	ServerKeyFile  = "key.pem"
)

// LoadOrCreateServerCert loads the self-signed certificate kept in dir
// (cert.pem, key.pem), or makes one for host (and localhost and the
// loopback addresses), valid 10 years, writing the key 0600 and the
// certificate 0644 in a directory 0700. created says it was made now.
func LoadOrCreateServerCert(dir, host string) (cert tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
		return cert, false, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return cert, false, fmt.Errorf("the appliance's TLS certificate in %s: %w (remove both files to make a new one)", dir, err)
	}
	if _, serr := os.Stat(keyPath); serr == nil {
		return cert, false, fmt.Errorf("the appliance's TLS certificate in %s: %s exists without %s (remove it to make a new pair)", dir, ServerKeyFile, ServerCertFile)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if host != "" && host != "localhost" {
		hosts = append([]string{host}, hosts...)
	}
	if host == "" {
		host = "localhost"
	}
	cert, err = SelfSigned(host, hosts, 10*365*24*time.Hour)
	if err != nil {
		return cert, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return cert, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return cert, false, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return cert, false, err
	}
	return cert, true, nil
}

// writeNew writes a file through a temporary one, so that a crash never
// leaves half a key.
func writeNew(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadServerCert loads a certificate and key from PEM files (the OVA's
// first-boot certificate), with its leaf parsed.
func LoadServerCert(certPath, keyPath string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return cert, fmt.Errorf("http.tls_cert %s, http.tls_key %s: %w", certPath, keyPath, err)
	}
	cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	return cert, err
}

// ServerConfig is the TLS configuration of the appliance's listener:
// TLS 1.2 and up, the certificate given.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// IsLoopback reports whether a listen address (host:port) binds loopback
// only.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
