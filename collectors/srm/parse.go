package srm

import (
	"errors"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// listPage is one page of an SRM list (the reference's *DrResponseList).
type listPage[T any] struct {
	List []T     `json:"list"`
	Meta rawMeta `json:"_meta"`
}

// rawMeta is a list's _meta.
type rawMeta struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Links  struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"links"`
}

// parseList reads one page of a list (as the collector's streaming decode
// does; the fuzz tests call it).
func parseList[T any](body []byte) (*listPage[T], error) {
	p := new(listPage[T])
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

// check refuses a page whose paging fields cannot be.
func (p *listPage[T]) check() error {
	if p.Meta.Total < 0 {
		return fmt.Errorf("field _meta.total: negative (%d)", p.Meta.Total)
	}
	if p.Meta.Offset < 0 {
		return fmt.Errorf("field _meta.offset: negative (%d)", p.Meta.Offset)
	}
	return nil
}

// session is the answer to POST /session (SessionIdData).
type session struct {
	SessionID string `json:"session_id"`
}

// parseSession reads the answer to a login.
func parseSession(body []byte) (string, error) {
	var s session
	if err := rest.DecodeJSON(body, &s); err != nil {
		return "", err
	}
	if s.SessionID == "" {
		return "", errors.New("field session_id: empty")
	}
	return s.SessionID, nil
}

// serverInfo is a vCenter or SRM server of a pairing.
type serverInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

// pairing is a Pairing.
type pairing struct {
	PairingID string     `json:"pairing_id"`
	LocalVC   serverInfo `json:"local_vc_server"`
	LocalSRM  serverInfo `json:"local_srm_server"`
	RemoteVC  serverInfo `json:"remote_vc_server"`
	RemoteSRM serverInfo `json:"remote_srm_server"`
}

// group is a ProtectionGroupInfo.
type group struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	ProtectedVCGUID string `json:"protected_vc_guid"`
	RecoveryVCGUID  string `json:"recovery_vc_guid"`
	TotalVMs        int    `json:"total_vms"`
	ReplicationType string `json:"replication_type"`
}

// groupVM is a ProtectionGroupVmInfo.
type groupVM struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Template bool   `json:"template"`
	Status   struct {
		Status string `json:"status"`
	} `json:"protection_status_details"`
}

// errorBody is the reference's ResponseError.
type errorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
	OpID      string `json:"op_id"`
}
