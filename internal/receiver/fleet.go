package receiver

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
)

// Report states of an appliance's month, in order.
const (
	MonthExpected = "expected" // nothing received (Missing once past the due day)
	MonthReceived = "received" // received, but no version verified (Error says why)
	MonthVerified = "verified"
	MonthMerged   = "merged"
)

// FleetView is GET /api/v1/fleet.
type FleetView struct {
	ReceiverID string           `json:"receiver_id"`
	At         time.Time        `json:"at"`
	Appliances []FleetAppliance `json:"appliances"`
}

// FleetAppliance is one appliance's state.
type FleetAppliance struct {
	Appliance
	Silent     bool                      `json:"silent"`
	Products   []protocol.ProductState   `json:"products"`
	OpenAlerts []protocol.HeartbeatAlert `json:"open_alerts"`
	Months     []MonthState              `json:"months"`
}

// MonthState is the report state of one month of one appliance.
type MonthState struct {
	Month   string `json:"month"`
	State   string `json:"state"`
	Version int    `json:"version,omitempty"`
	Missing bool   `json:"missing,omitempty"` // expected and past its due day
	Error   string `json:"error,omitempty"`
}

// Fleet is every appliance with its version, last heartbeat, products'
// last collected hours, open alerts and report state per month (from its
// enrolment month to the last complete month, and any month received).
func (r *Receiver) Fleet(ctx context.Context) (*FleetView, error) {
	now := r.now()
	apps, err := r.Appliances(ctx)
	if err != nil {
		return nil, err
	}
	f := &FleetView{ReceiverID: r.id, At: now, Appliances: []FleetAppliance{}}
	type key struct {
		ref   int64
		month string
	}
	states := map[key]MonthState{}
	rows, err := r.Pool.Query(ctx, `SELECT DISTINCT ON (appliance, month) appliance, month, version, state, error, merged_at IS NOT NULL
		FROM receiver_bundles ORDER BY appliance, month, (state = 'verified') DESC, version DESC`)
	if err != nil {
		return nil, err
	}
	var (
		ref            int64
		month, st, msg string
		version        int
		merged         bool
	)
	byRef := map[int64][]string{}
	_, err = pgx.ForEachRow(rows, []any{&ref, &month, &version, &st, &msg, &merged}, func() error {
		ms := MonthState{Month: month, State: MonthVerified, Version: version}
		switch {
		case st == stateFailed:
			ms.State, ms.Error = MonthReceived, msg
		case merged:
			ms.State = MonthMerged
		}
		states[key{ref, month}] = ms
		byRef[ref] = append(byRef[ref], month)
		return nil
	})
	if err != nil {
		return nil, err
	}
	hbs := map[int64][]byte{}
	rows, err = r.Pool.Query(ctx, `SELECT id, heartbeat FROM receiver_appliances WHERE heartbeat IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	var hb []byte
	if _, err := pgx.ForEachRow(rows, []any{&ref, &hb}, func() error { hbs[ref] = append([]byte(nil), hb...); return nil }); err != nil {
		return nil, err
	}
	for _, a := range apps {
		fa := FleetAppliance{Appliance: a, Products: []protocol.ProductState{}, OpenAlerts: []protocol.HeartbeatAlert{}, Months: []MonthState{}}
		last := a.EnrolledAt
		if a.LastHeartbeat != nil {
			last = *a.LastHeartbeat
		}
		fa.Silent = a.RevokedAt == nil && now.Sub(last) > r.SilentAfter
		if b, ok := hbs[a.Ref]; ok {
			var h protocol.Heartbeat
			if json.Unmarshal(b, &h) == nil {
				fa.Products, fa.OpenAlerts = h.Products, h.OpenAlerts
			}
		}
		months := map[string]bool{}
		for _, m := range byRef[a.Ref] {
			months[m] = true
		}
		for _, m := range expectedMonths(a.EnrolledAt, now) {
			months[m] = true
		}
		list := make([]string, 0, len(months))
		for m := range months {
			list = append(list, m)
		}
		sort.Strings(list)
		for _, m := range list {
			ms, ok := states[key{a.Ref, m}]
			if !ok {
				ms = MonthState{Month: m, State: MonthExpected, Missing: now.After(r.due(m))}
			}
			fa.Months = append(fa.Months, ms)
		}
		f.Appliances = append(f.Appliances, fa)
	}
	return f, nil
}

// expectedMonths are the complete months from the one enrolled in to the
// one before now (at most 24).
func expectedMonths(enrolled, now time.Time) []string {
	var out []string
	m := time.Date(enrolled.Year(), enrolled.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if end.Sub(m) > 24*31*24*time.Hour {
		m = end.AddDate(-2, 0, 0)
	}
	for ; m.Before(end); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out
}
