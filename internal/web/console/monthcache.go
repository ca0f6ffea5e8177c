package console

import (
	"context"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/service"
)

// The month so far is the dashboard's one costly part: every object's
// spans of the month cut into days (a few hundred milliseconds for
// thousands of objects). Its figures change only when an hour is
// committed, a few minutes past each hour, so the dashboard shows figures
// up to a minute old, refreshed in the background (stale while
// revalidating): a view never waits for them unless they are over ten
// minutes old, as after a start.
const (
	monthFresh = time.Minute
	monthStale = 10 * time.Minute
)

type monthCache struct {
	load func(context.Context) (service.MonthToDate, error) // the service's MonthToDate
	now  func() time.Time

	mu         sync.Mutex
	val        service.MonthToDate
	at         time.Time // when val was computed; zero: never
	refreshing bool
}

// get returns the month so far and when it was computed.
func (m *monthCache) get(ctx context.Context) (service.MonthToDate, time.Time, error) {
	now := m.now()
	m.mu.Lock()
	age := now.Sub(m.at)
	switch {
	case !m.at.IsZero() && age < monthFresh:
		defer m.mu.Unlock()
		return m.val, m.at, nil
	case !m.at.IsZero() && age < monthStale:
		if !m.refreshing {
			m.refreshing = true
			go m.refresh()
		}
		defer m.mu.Unlock()
		return m.val, m.at, nil
	}
	m.mu.Unlock()
	v, err := m.load(ctx)
	if err != nil {
		return v, now, err
	}
	m.put(v, now)
	return v, now, nil
}

func (m *monthCache) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	at := m.now()
	v, err := m.load(ctx)
	m.mu.Lock()
	m.refreshing = false
	m.mu.Unlock()
	if err == nil {
		m.put(v, at)
	}
}

func (m *monthCache) put(v service.MonthToDate, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at.After(m.at) {
		m.val, m.at = v, at
	}
}
