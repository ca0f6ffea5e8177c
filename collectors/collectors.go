// Package collectors defines what every product collector implements and
// emits: the Collector interface, the Observation type and the registry that
// product packages (one folder each below this one) add themselves to.
//
// A collector knows nothing of PostgreSQL or SMTP: it reads a product's state
// and returns observations; the scheduler stores them through internal/store.
package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Metric names used by the collectors and the report. METERING.md says what
// each is billed on.
const (
	MetricVMVRAM        = "vm.vram"      // capped billed vRAM of a powered-on VM, MB
	MetricHostCores     = "host.cores"   // physical cores of a host running a powered-on VM
	MetricVSANUsedGB    = "vsan.used_gb" // used capacity of a vSAN cluster, GB
	MetricTanzuVRAM     = "tanzu.vram"   // capped billed vRAM of a Tanzu VM, MB
	MetricTanzuCores    = "tanzu.cores"  // cores of a host running a Tanzu VM
	MetricVMManaged     = "vm.managed"   // a VM under management (VCD, vRA): quantity 1, vram in dims
	MetricNSXVRAM       = "nsx.vram"     // capped billed vRAM of a VM using NSX, MB, edition set
	MetricNSXVM         = "nsx.vm"       // a VM reached by NSX features: quantity 1, edition set; vRAM joined from the vCenter
	MetricVMProtected   = "vm.protected" // a protected VM (SRM, VCDA)
	MetricVMMigrated    = "vm.migrated"  // a migrated VM (VCDA)
	MetricConnections   = "connections"  // concurrent connections (Horizon)
	MetricMonitoredVM   = "vm.monitored" // a VM monitored by Aria Operations (for Networks)
	UnitMB              = "MB"
	UnitGB              = "GB"
	UnitCores           = "cores"
	UnitCount           = "count"
	VRAMCapMB           = 24 * 1024
	DimNotReportableKey = "not_reportable" // set to "true" when a VM's host licence is perpetual or demo
)

// Horizon's metrics (METERING.md: the monthly maximum of each), in their
// own block so that the table above keeps its alignment.
const (
	MetricDesktopVM   = "horizon.desktop" // a Horizon desktop VM under management (VDI): quantity 1
	MetricRDSHSession = "horizon.session" // RDSH sessions under management of one Horizon farm: quantity the session count
)

// CappedBilledMB is the billed vRAM of one powered-on VM (METERING.md):
// max(reservation, half the configured memory), capped at 24 GB.
func CappedBilledMB(configuredMB, reservationMB float64) float64 {
	billed := configuredMB / 2
	if reservationMB > billed {
		billed = reservationMB
	}
	if billed > VRAMCapMB {
		billed = VRAMCapMB
	}
	return billed
}

// ErrAuth is wrapped by collector errors that say the product refused the
// credentials. The scheduler does not retry them within the hour (a retry
// storm could lock the metering account out).
var ErrAuth = errors.New("authentication failed")

// ErrBadCredentials is what collectors wrap when a product rejects the user
// name or password ("incorrect user name or password"). It is ErrAuth.
var ErrBadCredentials error = badCredentials{}

type badCredentials struct{}

func (badCredentials) Error() string        { return "incorrect user name or password" }
func (badCredentials) Is(target error) bool { return target == ErrAuth }

// Observation is one metered object in one collection hour.
type Observation struct {
	Metric    string            // one of the Metric constants
	ObjectKey string            // stable identity (METERING.md, "Identity"); never a name
	Quantity  float64           // in Unit
	Unit      string            // MB, GB, cores, count
	Edition   string            // licence edition, "" when the product has none
	Dims      map[string]string // names and placement, for customer rules; hashed in reports
}

// Collector reads a product's usage now.
type Collector interface {
	// Collect reads the product's state. It must return promptly when ctx is
	// cancelled. hour is the collection hour the observations are stored as.
	Collect(ctx context.Context, hour time.Time) ([]Observation, error)
}

// Closer is implemented by collectors that hold a session to release.
type Closer interface {
	Close(ctx context.Context) error
}

// Identity is what a product says it is.
type Identity struct {
	InstanceID string // e.g. vCenter about.instanceUuid: the same product added twice has one
	Version    string
	Build      string
	Name       string // product's own name for itself
}

// VersionLabel is the version as the report's Product Version column shows
// it: "8.0.3 build 24022515", the version alone when the build adds
// nothing, "" when the product does not say.
func (i Identity) VersionLabel() string {
	if i.Build != "" && i.Build != i.Version && i.Version != "" {
		return i.Version + " build " + i.Build
	}
	return i.Version
}

// Identifier is implemented by collectors that can tell which instance they
// talk to (used by `product add` to refuse duplicates).
type Identifier interface {
	Identify(ctx context.Context) (Identity, error)
}

// Target is what a collector needs to reach its product.
type Target struct {
	ProductID  int64
	Kind       string
	Endpoint   string // https://host[:port][/path]
	Username   string // may be empty for token-based products
	Password   Secret // password or token
	Thumbprint string // accepted SHA-256 certificate thumbprint, when the system does not trust it
	InstanceID string // identity recorded at `product add` (vCenter: about.instanceUuid), "" if unknown
	Options    json.RawMessage
	Timeout    time.Duration // deadline of one remote call
	Logger     *slog.Logger
	// Paired is the product (usually a vCenter) this one is paired with, nil if none.
	Paired *Target
	// VCenters, when set, lists the instance UUIDs of the vCenters
	// registered on this appliance, read at each call (the scheduler sets
	// it), so that a product naming the vCenters of its VMs (Aria
	// Automation) can say which VMs join no registered vCenter. nil: not
	// known (product add, tests). Not marshalled (a Target may be shown
	// as JSON).
	VCenters func(ctx context.Context) ([]string, error) `json:"-"`
}

// DefaultTimeout is the deadline of one remote call when Target.Timeout is
// not set.
const DefaultTimeout = 60 * time.Second

// SetDefaults fills in what t leaves unset: a Logger that discards,
// DefaultTimeout.
func (t *Target) SetDefaults() {
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
}

// RegisteredVCenters is the set of the instance UUIDs of VCenters,
// lower-cased; nil when the target does not say, or when the list cannot be
// read (logged: the caller then joins on its own data).
func (t *Target) RegisteredVCenters(ctx context.Context) map[string]bool {
	if t.VCenters == nil {
		return nil
	}
	ids, err := t.VCenters(ctx)
	if err != nil {
		if t.Logger != nil {
			t.Logger.Warn("the registered vCenters could not be read: VMs are joined on the product's own data", "err", err)
		}
		return nil
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[strings.ToLower(strings.TrimSpace(id))] = true
	}
	return set
}

// Factory builds a Collector for one product. It validates Target.Options and
// returns an error naming the bad option; it does not contact the product.
type Factory func(t Target) (Collector, error)

// Kind is everything the appliance knows about a product kind, declared once
// by the kind's package and read by the CLI, the report and the demo: adding
// a product is its folder, one line in collectors/all and its report rules.
type Kind struct {
	Name        string // the kind's key, e.g. "vcenter"; stored with each product
	DisplayName string // the product column of the report and of product list, e.g. "vCenter Server"
	// PairsWith is the kind of the product this one must be paired with
	// (NSX with its vCenter), "" when it stands alone.
	PairsWith string
	// Options returns the kind's options with their defaults (a struct whose
	// JSON field names are the keys of --options); nil when it has none.
	Options func() any
	New     Factory // builds the collector; validates the options, contacts nothing
	// Every is the kind's collection cadence: 0 (or one hour) means every
	// hour; otherwise a whole number of hours that divides a day, and the
	// kind is collected only in the UTC hours that are multiples of it
	// (Horizon DaaS: 6 h, collected at 00, 06, 12 and 18 UTC). The hours in
	// between are not expected: the scheduler neither collects them nor
	// records them as gaps (internal/store reads Cadences).
	Every time.Duration
}

var (
	mu    sync.RWMutex
	kinds = map[string]Kind{}
)

// Register adds a product kind. It panics on a duplicate or an incomplete
// declaration, as it runs from init.
func Register(k Kind) {
	mu.Lock()
	defer mu.Unlock()
	if k.Name == "" || k.DisplayName == "" || k.New == nil {
		panic(fmt.Sprintf("collectors: kind %q needs a name, a display name and a constructor", k.Name))
	}
	if _, dup := kinds[k.Name]; dup {
		panic("collectors: kind registered twice: " + k.Name)
	}
	if k.Every < 0 || k.Every%time.Hour != 0 || (k.Every > 0 && (24*time.Hour)%k.Every != 0) {
		panic(fmt.Sprintf("collectors: kind %q: cadence %s is not a whole number of hours dividing a day", k.Name, k.Every))
	}
	kinds[k.Name] = k
}

// Cadence is the collection cadence of kind name in hours: 1 unless the
// kind declares a longer Every.
func Cadence(name string) int {
	k, ok := Lookup(name)
	if !ok || k.Every <= time.Hour {
		return 1
	}
	return int(k.Every / time.Hour)
}

// Cadences lists the kinds collected less often than hourly, sorted, with
// their cadence in hours (for SQL: the kinds not listed are hourly).
func Cadences() (names []string, hours []int32) {
	for _, n := range Kinds() {
		if h := Cadence(n); h > 1 {
			names = append(names, n)
			hours = append(hours, int32(h))
		}
	}
	return names, hours
}

// Due reports whether kind name is collected at hour: every hour, or, for
// a kind with a longer cadence, in the UTC hours that are multiples of it.
func Due(name string, hour time.Time) bool {
	return hour.UTC().Hour()%Cadence(name) == 0
}

// Lookup returns the registered kind called name.
func Lookup(name string) (Kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// DisplayName is the product name of kind name, or name itself when no such
// kind is registered.
func DisplayName(name string) string {
	if k, ok := Lookup(name); ok {
		return k.DisplayName
	}
	return name
}

// New builds the collector for t.Kind.
func New(t Target) (Collector, error) {
	k, ok := Lookup(t.Kind)
	if !ok {
		return nil, fmt.Errorf("unknown product kind %q (known: %v)", t.Kind, Kinds())
	}
	t.SetDefaults()
	t.Logger = t.Logger.With("collector", t.Kind, LogKeyHost, EndpointHost(t.Endpoint))
	return k.New(t)
}

// LogKeyHost is the log key under which every collector's lines carry the
// product's host name (New adds it, with the kind under "collector").
const LogKeyHost = "product_host"

// EndpointHost is the host name of an endpoint URL or host[:port].
func EndpointHost(endpoint string) string {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	if u, err := url.Parse(e); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return endpoint
}

// Kinds lists the registered product kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	ks := make([]string, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Editions is a product's edition ladder: its editions from lowest to highest
// and the edition each feature needs. METERING.md bills several products on
// the highest edition among the features that reach an object (NSX per VM;
// Aria from its licence groups): Highest answers that, in one place.
type Editions struct {
	Order     []string          // editions, lowest first
	ByFeature map[string]string // feature -> the edition it needs
}

// Highest is the highest edition needed by any of features; "" when none of
// them is in the map.
func (e Editions) Highest(features []string) string {
	best, rank := "", -1
	for _, f := range features {
		ed, ok := e.ByFeature[f]
		if !ok {
			continue
		}
		if r := slices.Index(e.Order, ed); r > rank {
			best, rank = ed, r
		}
	}
	return best
}

// Aria Operations and Aria Operations for Networks are billed in one of two
// modes (METERING.md), chosen per product when it is added (option "mode"):
// as a Flex add-on, on the capped billed vRAM of the monitored VMs joined to
// their vCenter, or standalone, on the non-unique count of monitored VMs.
// The mode is part of each observation's stored edition (AriaEdition), so
// that the report picks the rule hour by hour and a change of mode applies
// from the hour it is collected with, never to the hours before it.
const (
	AriaAddon      = "addon"
	AriaStandalone = "standalone"
)

// AriaModes are the modes, the default (*assumed*: the seed lists the Flex
// add-on first, as part of the Flex Core programme) first.
var AriaModes = []string{AriaAddon, AriaStandalone}

// ariaSuffix is what AriaEdition appends for each mode.
var ariaSuffix = map[string]string{AriaAddon: "(Flex add-on)", AriaStandalone: "(standalone)"}

// AriaEdition is the stored edition of an Aria observation: the licence
// edition and the mode, "Advanced (Flex add-on)"; only the mode's part when
// the edition is unknown.
func AriaEdition(edition, mode string) string {
	s := ariaSuffix[mode]
	if edition == "" || s == "" {
		return edition + s
	}
	return edition + " " + s
}

// AriaMode is the mode an edition made by AriaEdition carries, "" for any
// other edition.
func AriaMode(edition string) string {
	for m, s := range ariaSuffix {
		if strings.HasSuffix(edition, s) {
			return m
		}
	}
	return ""
}
