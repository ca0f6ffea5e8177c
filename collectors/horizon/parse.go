package horizon

import (
	"errors"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// The records below declare only the fields the collector uses. The API's
// personal data (SessionInfo.user_id, broker_user_id, client_data,
// security_gateway_data; MachineInfo.user_ids) is deliberately absent: it
// is never decoded, so it cannot be kept, logged or reported.

// tokens is AuthTokens (POST /login) or AccessToken (POST /refresh).
type tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// parseTokens reads a login (refresh true: both tokens) or a refresh answer.
func parseTokens(body []byte, refresh bool) (tokens, error) {
	var t tokens
	if err := rest.DecodeJSON(body, &t); err != nil {
		return tokens{}, err
	}
	if t.Access == "" {
		return tokens{}, errors.New("field access_token: empty")
	}
	if refresh && t.Refresh == "" {
		return tokens{}, errors.New("field refresh_token: empty")
	}
	return t, nil
}

// environment is EnvironmentInfo.
type environment struct {
	ClusterGUID string `json:"cluster_guid"`
	ClusterName string `json:"cluster_name"`
	PodName     string `json:"local_pod_name"`
}

func parseEnvironment(body []byte) (environment, error) {
	var e environment
	if err := rest.DecodeJSON(body, &e); err != nil {
		return environment{}, err
	}
	if e.ClusterGUID == "" {
		return environment{}, errors.New("field cluster_guid: empty")
	}
	return e, nil
}

// license is LicenseInfo.
type license struct {
	Edition    string `json:"license_edition"`
	UsageModel string `json:"usage_model"`
	Mode       string `json:"license_mode"`
	Licensed   bool   `json:"licensed"`
}

// desktopPool is DesktopPoolInfo.
type desktopPool struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
}

// farm is FarmInfo.
type farm struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
}

// rdsServer is RDSServerInfo.
type rdsServer struct {
	ID     string `json:"id"`
	FarmID string `json:"farm_id"`
}

// machine is MachineInfo (without user_ids).
type machine struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	PoolID  string `json:"desktop_pool_id"`
	State   string `json:"state"`
	Type    string `json:"type"`
	Managed *struct {
		MissingInVCenter bool `json:"missing_in_vcenter"`
	} `json:"managed_machine_data"`
}

// session is SessionInfo without its personal data. The id is needed to
// count a session once when it is listed twice; it is kept in memory for
// the collection only.
type session struct {
	ID          string `json:"id"`
	Type        string `json:"session_type"`
	State       string `json:"session_state"`
	MachineID   string `json:"machine_id"`
	PoolID      string `json:"desktop_pool_id"`
	FarmID      string `json:"farm_id"`
	RDSServerID string `json:"rds_server_id"`
}

// parseList reads one answer of a list call: a JSON array.
func parseList[T any](body []byte) ([]T, error) {
	var l []T
	if err := rest.DecodeJSON(body, &l); err != nil {
		return nil, err
	}
	return l, nil
}

// errorBody is the API's error answer.
type errorBody struct {
	Status string `json:"status"`
	Errors []struct {
		Key     string `json:"error_key"`
		Message string `json:"error_message"`
	} `json:"errors"`
}

// errorMessage extracts the message of an error answer.
func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && len(e.Errors) > 0 && e.Errors[0].Message != "" {
		if e.Errors[0].Key != "" {
			return fmt.Sprintf("%s (%s)", rest.Snippet([]byte(e.Errors[0].Message)), rest.Snippet([]byte(e.Errors[0].Key)))
		}
		return rest.Snippet([]byte(e.Errors[0].Message))
	}
	return rest.Snippet(b)
}
