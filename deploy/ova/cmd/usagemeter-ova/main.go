// Command usagemeter-ova writes the appliance's OVF descriptor for a
// streamOptimized VMDK and packs both, with a SHA-256 manifest, into an OVA.
//
//	usagemeter-ova -vmdk out/usagemeter-disk1.vmdk -out out/usagemeter.ova -version 1.2.3
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/usagemeter/usagemeter/deploy/ova"
)

func main() {
	vmdk := flag.String("vmdk", "", "streamOptimized VMDK of the appliance disk")
	out := flag.String("out", "", "OVA to write")
	name := flag.String("name", "usagemeter", "VM and file base name")
	version := flag.String("version", "dev", "appliance version")
	descOnly := flag.String("ovf", "", "also write the descriptor to this file")
	flag.Parse()
	if *vmdk == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*vmdk, *out, *name, *version, *descOnly); err != nil {
		fmt.Fprintln(os.Stderr, "usagemeter-ova:", err)
		os.Exit(1)
	}
}

func run(vmdk, out, name, version, descPath string) error {
	capacity, err := ova.VMDKCapacity(vmdk)
	if err != nil {
		return err
	}
	mtime := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			mtime = time.Unix(sec, 0)
		}
	}
	desc, err := ova.Build(out, name, version, vmdk, capacity, mtime)
	if err != nil {
		return err
	}
	if descPath != "" {
		return os.WriteFile(descPath, desc, 0o644)
	}
	return nil
}
