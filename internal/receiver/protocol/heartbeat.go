package protocol

import (
	"context"
	"sort"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
)

// HeartbeatOf is the appliance's heartbeat now: every product (id, kind,
// active, last successful hour) and the open alerts (kind, product,
// opening time). No endpoint, name, error text or usage figure is in it.
func HeartbeatOf(ctx context.Context, st *store.Store, version string, now time.Time) (Heartbeat, error) {
	hb := Heartbeat{Version: version, SentAt: now.UTC(), Products: []ProductState{}, OpenAlerts: []HeartbeatAlert{}}
	prods, err := st.Products(ctx, false)
	if err != nil {
		return hb, err
	}
	last, err := st.LastCollected(ctx)
	if err != nil {
		return hb, err
	}
	for _, p := range prods {
		ps := ProductState{ID: p.ID, Kind: p.Kind, Active: p.Active}
		if h, ok := last[p.ID]; ok {
			h := h.UTC()
			ps.LastHour = &h
		}
		hb.Products = append(hb.Products, ps)
	}
	sort.Slice(hb.Products, func(i, j int) bool { return hb.Products[i].ID < hb.Products[j].ID })
	alerts, err := st.OpenAlerts(ctx)
	if err != nil {
		return hb, err
	}
	for _, a := range alerts {
		hb.OpenAlerts = append(hb.OpenAlerts, HeartbeatAlert{Kind: a.Kind, ProductID: a.ProductID, OpenedAt: a.OpenedAt.UTC()})
	}
	return hb, nil
}
