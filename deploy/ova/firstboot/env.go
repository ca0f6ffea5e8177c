// Package firstboot configures the appliance on its first boot from the OVF
// environment vSphere hands to the VM: network, host name, the admin
// password, /etc/usagemeter/config.yaml, the TLS certificate and the database.
// It runs once (a marker file records that it did) from
// usagemeter-firstboot.service; `usagemeter-firstboot --force` runs it again.
//
// Bad input never stops the appliance: an invalid address falls back to DHCP,
// an invalid setting is reported on the console, and secrets (the admin and
// SMTP passwords) are never printed, logged or written anywhere but the
// config file (mode 0600) and the shadow file.
package firstboot

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ParseEnv reads the properties of an OVF environment document
// (DSP0243 section 11: <Environment><PropertySection><Property oe:key oe:value/>).
func ParseEnv(b []byte) (map[string]string, error) {
	var env struct {
		XMLName  xml.Name
		Sections []struct {
			XMLName    xml.Name
			Properties []struct {
				Key   string `xml:"key,attr"`
				Value string `xml:"value,attr"`
			} `xml:"Property"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("OVF environment is not valid XML: %w", err)
	}
	if env.XMLName.Local != "Environment" {
		return nil, fmt.Errorf("OVF environment: root element is <%s>, want <Environment>", env.XMLName.Local)
	}
	props := map[string]string{}
	for _, s := range env.Sections {
		if s.XMLName.Local != "PropertySection" {
			continue
		}
		for _, p := range s.Properties {
			if p.Key == "" {
				return nil, errors.New("OVF environment: a Property has no key")
			}
			props[p.Key] = p.Value
		}
	}
	return props, nil
}

// Source is one way of getting the OVF environment document.
type Source interface {
	Name() string
	// Read returns the document, or os.ErrNotExist when this transport has none.
	Read(ctx context.Context) ([]byte, error)
}

// FileSource reads the environment from a file (tests, manual runs).
type FileSource string

func (f FileSource) Name() string { return string(f) }

func (f FileSource) Read(context.Context) ([]byte, error) { return os.ReadFile(string(f)) }

// GuestInfoSource asks VMware Tools for guestinfo.ovfEnv (the
// com.vmware.guestInfo transport).
type GuestInfoSource struct{}

func (GuestInfoSource) Name() string { return "VMware Tools guestinfo.ovfEnv" }

func (GuestInfoSource) Read(ctx context.Context) ([]byte, error) {
	// Outside VMware the backdoor these tools use is not there: skip them.
	if out, err := exec.CommandContext(ctx, "systemd-detect-virt", "--vm").Output(); err == nil && !bytes.HasPrefix(out, []byte("vmware")) {
		return nil, os.ErrNotExist
	}
	path, err := exec.LookPath("vmware-rpctool")
	args := []string{"info-get guestinfo.ovfEnv"}
	if err != nil {
		if path, err = exec.LookPath("vmtoolsd"); err != nil {
			return nil, os.ErrNotExist
		}
		args = []string{"--cmd", "info-get guestinfo.ovfEnv"}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout = &out // the document holds passwords: stdout only, never logged
	if err := cmd.Run(); err != nil {
		// Not on VMware, or no environment set: not an error of ours.
		return nil, os.ErrNotExist
	}
	b := bytes.TrimSpace(out.Bytes())
	if len(b) == 0 {
		return nil, os.ErrNotExist
	}
	return b, nil
}

// ISOSource looks for ovf-env.xml on a CD-ROM (the iso transport): every
// /dev/sr* device is mounted read-only in turn.
type ISOSource struct {
	Devices []string // default: /dev/sr*
}

func (ISOSource) Name() string { return "ISO transport (ovf-env.xml on a CD-ROM)" }

func (s ISOSource) Read(ctx context.Context) ([]byte, error) {
	devs := s.Devices
	if devs == nil {
		devs, _ = filepath.Glob("/dev/sr*")
	}
	for _, dev := range devs {
		dir, err := os.MkdirTemp("", "ovfenv-")
		if err != nil {
			return nil, err
		}
		mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = exec.CommandContext(mctx, "mount", "-o", "ro", "-t", "iso9660", dev, dir).Run()
		cancel()
		if err != nil {
			os.Remove(dir)
			continue
		}
		var b []byte
		for _, n := range []string{"ovf-env.xml", "OVF-ENV.XML", "ovf_env.xml", "OVF_ENV.XML"} {
			if b, err = os.ReadFile(filepath.Join(dir, n)); err == nil {
				break
			}
		}
		_ = exec.Command("umount", dir).Run()
		os.Remove(dir)
		if err == nil {
			return b, nil
		}
	}
	return nil, os.ErrNotExist
}

// ReadEnv returns the properties from the first source that has an
// environment, and that source's name. It returns os.ErrNotExist when none has.
func ReadEnv(ctx context.Context, sources ...Source) (map[string]string, string, error) {
	for _, s := range sources {
		b, err := s.Read(ctx)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, s.Name(), fmt.Errorf("reading the OVF environment from %s: %w", s.Name(), err)
		}
		p, err := ParseEnv(b)
		if err != nil {
			return nil, s.Name(), fmt.Errorf("%s: %w", s.Name(), err)
		}
		return p, s.Name(), nil
	}
	return nil, "", os.ErrNotExist
}
