// Package all links every product collector into a binary: each kind's
// package registers itself with collectors.Register from init, and this is
// the one place that imports them (as telegraf's plugins/inputs/all).
// Adding a product kind is its folder and one line here.
package all

import (
	_ "github.com/usagemeter/usagemeter/collectors/horizon"     // Horizon (Connection Server)
	_ "github.com/usagemeter/usagemeter/collectors/horizondaas" // Horizon DaaS (service provider, every 6 hours)
	_ "github.com/usagemeter/usagemeter/collectors/nsxt"        // NSX-T (NSX Data Center)
	_ "github.com/usagemeter/usagemeter/collectors/nsxv"        // NSX for vSphere
	_ "github.com/usagemeter/usagemeter/collectors/srm"         // Site Recovery Manager
	_ "github.com/usagemeter/usagemeter/collectors/tkgm"        // Tanzu Kubernetes Grid (multi-cloud)
	_ "github.com/usagemeter/usagemeter/collectors/vcd"         // Cloud Director
	_ "github.com/usagemeter/usagemeter/collectors/vcda"        // Cloud Director Availability
	_ "github.com/usagemeter/usagemeter/collectors/vcenter"     // vCenter, vSAN, VCF, Tanzu (TKGs)
	_ "github.com/usagemeter/usagemeter/collectors/vra7"        // Aria Automation 7.x
	_ "github.com/usagemeter/usagemeter/collectors/vra8"        // Aria Automation 8.x
	_ "github.com/usagemeter/usagemeter/collectors/vrni"        // Aria Operations for Networks
	_ "github.com/usagemeter/usagemeter/collectors/vrops"       // Aria Operations
)
