package receiver

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
)

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func maxSkew() time.Duration { return protocol.MaxSkew }
