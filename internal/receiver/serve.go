package receiver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/secretfile"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/internal/web"
)

// Files of the self-signed certificate in data_dir.
const (
	CertFile = "receiver-tls.crt"
	KeyFile  = "receiver-tls.key"
)

// Opened is a receiver over its opened database.
type Opened struct {
	*Receiver
	App  *appliance.App
	Cert tls.Certificate
}

// Close releases the database.
func (o *Opened) Close() { o.App.Close() }

// OpenConfig opens the receiver of cfg: the database (managed PostgreSQL
// when database.url is empty, as the appliance's), both migration sets, the
// TLS certificate (created once when none is configured) and, when
// withKeys, the aggregator keys.
func OpenConfig(ctx context.Context, cfg *config.Config, stderr io.Writer, withKeys bool) (*Opened, error) {
	rc := cfg.Receiver
	var keys openpgp.EntityList
	if withKeys {
		if len(rc.AggregatorKeys) == 0 {
			return nil, errors.New("receiver.aggregator_keys: list at least one armored OpenPGP private key file: bundles are decrypted with it")
		}
		for i, p := range rc.AggregatorKeys {
			ks, err := readPrivateKeys(p)
			if err != nil {
				return nil, fmt.Errorf("receiver.aggregator_keys[%d] %s: %w", i, p, err)
			}
			keys = append(keys, ks...)
		}
	}
	app, err := appliance.OpenConfig(ctx, cfg, stderr)
	if err != nil {
		return nil, err
	}
	cert, err := loadOrCreateCert(cfg, app.Log)
	if err != nil {
		app.Close()
		return nil, err
	}
	r := &Receiver{Pool: app.Store.Pool(), Store: app.Store, Keys: keys, Thumbprint: tlsutil.Thumbprint(cert.Leaf.Raw),
		AdminToken: rc.AdminToken.Reveal(), AlertTo: cfg.Alerts.To, SilentAfter: rc.SilentAfter.D(), DueDay: rc.DueDay,
		MaxBundle: rc.MaxBundleBytes, Auth: web.AuthConfig(app, true), Log: app.Log.With("component", "receiver")}
	if err := Open(ctx, r); err != nil {
		app.Close()
		return nil, err
	}
	return &Opened{Receiver: r, App: app, Cert: cert}, nil
}

// readPrivateKeys reads an armored key file that must hold a private key.
func readPrivateKeys(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ks, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		return nil, err
	}
	for _, k := range ks {
		if k.PrivateKey == nil {
			return nil, errors.New("a public key only: the receiver needs the private key to decrypt")
		}
		if k.PrivateKey.Encrypted {
			return nil, errors.New("the private key is protected by a passphrase: export it without one for the receiver")
		}
	}
	return ks, nil
}

// loadOrCreateCert loads the configured certificate, or the self-signed one
// in data_dir, creating it (ECDSA P-256, 10 years, key 0600) at first use.
func loadOrCreateCert(cfg *config.Config, log *slog.Logger) (tls.Certificate, error) {
	rc := cfg.Receiver
	certPath, keyPath := rc.CertFile, rc.KeyFile
	if certPath == "" {
		certPath, keyPath = filepath.Join(cfg.DataDir, CertFile), filepath.Join(cfg.DataDir, KeyFile)
		if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
			hosts := rc.Hosts
			if len(hosts) == 0 {
				hosts = []string{"localhost", "127.0.0.1"}
				if h, err := os.Hostname(); err == nil {
					hosts = append(hosts, h)
				}
			}
			c, err := tlsutil.SelfSigned("usagemeter receiver", hosts, 10*365*24*time.Hour)
			if err != nil {
				return tls.Certificate{}, err
			}
			der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
			if err != nil {
				return tls.Certificate{}, err
			}
			if err := secretfile.CreateExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
				return tls.Certificate{}, fmt.Errorf("writing %s: %w", keyPath, err)
			}
			if err := secretfile.CreateExclusive(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})); err != nil {
				return tls.Certificate{}, fmt.Errorf("writing %s: %w", certPath, err)
			}
			log.Info("created the receiver's self-signed certificate", "path", certPath, "hosts", hosts, "thumbprint", tlsutil.Thumbprint(c.Certificate[0]))
		}
	}
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("receiver certificate: %w", err)
	}
	return c, nil
}

// Serve runs the receiver of cfg until ctx ends: the HTTPS listener (the
// protocol, the fleet API and the console), and every minute the alert
// checks and the mail outbox. version is the binary's. ready, if not nil,
// receives the listening address.
func Serve(ctx context.Context, cfg *config.Config, version string, stderr io.Writer, ready chan<- string) error {
	o, err := OpenConfig(ctx, cfg, stderr, true)
	if err != nil {
		return err
	}
	defer o.Close()
	o.Version = version
	worker, err := appliance.OutboxWorker(o.Store, cfg.SMTP, o.Log)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Receiver.Listen)
	if err != nil {
		return fmt.Errorf("receiver.listen: %w", err)
	}
	srv := &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{o.Cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:  log.New(io.Discard, "", 0)}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	o.Log.Info("receiver listening", "addr", ln.Addr().String(), "thumbprint", o.Thumbprint, "receiver_id", o.ID())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	run := func() {
		if err := o.Check(ctx); err != nil {
			o.Log.Error("receiver checks", "err", err)
		}
		if _, _, err := worker.RunOnce(ctx); err != nil {
			o.Log.Error("outbox", "err", err)
		}
	}
	run()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		case err := <-done:
			return fmt.Errorf("receiver HTTPS: %w", err)
		case <-tick.C:
			run()
		}
	}
}
