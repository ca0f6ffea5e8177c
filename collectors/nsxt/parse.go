package nsxt

import (
	"fmt"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// listResult is one page of an NSX list.
type listResult[T any] struct {
	ResultCount int    `json:"result_count"`
	Cursor      string `json:"cursor"`
	Results     []T    `json:"results"`
}

// parseList reads one page of a list (as get does from the answer).
func parseList[T any](body []byte) (*listResult[T], error) {
	p := new(listResult[T])
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// check validates a decoded list page.
func (p *listResult[T]) check() error {
	if p.ResultCount < 0 {
		return fmt.Errorf("field result_count: negative (%d)", p.ResultCount)
	}
	return nil
}

// vm is a fabric VirtualMachine.
type vm struct {
	ExternalID  string   `json:"external_id"`
	DisplayName string   `json:"display_name"`
	HostID      string   `json:"host_id"`
	PowerState  string   `json:"power_state"`
	ComputeIDs  []string `json:"compute_ids"`
	Type        string   `json:"type"`
}

// computeID returns the value of key in compute_ids ("instanceUuid:...").
func (v *vm) computeID(key string) string {
	for _, c := range v.ComputeIDs {
		if k, val, ok := strings.Cut(c, ":"); ok && k == key {
			return val
		}
	}
	return ""
}

// vif is a fabric VirtualNetworkInterface.
type vif struct {
	OwnerVMID         string `json:"owner_vm_id"`
	LportAttachmentID string `json:"lport_attachment_id"`
}

// segment is a Policy Segment.
type segment struct {
	ID               string `json:"id"`
	DisplayName      string `json:"display_name"`
	Path             string `json:"path"`
	ConnectivityPath string `json:"connectivity_path"`
}

// segmentPort is a Policy SegmentPort.
type segmentPort struct {
	ID         string `json:"id"`
	Attachment *struct {
		ID string `json:"id"`
	} `json:"attachment"`
}

// tier1 is a Policy Tier1 gateway.
type tier1 struct {
	Path      string `json:"path"`
	Tier0Path string `json:"tier0_path"`
}

// policy is a DFW or IDS security policy.
type policy struct {
	ID        string   `json:"id"`
	IsDefault bool     `json:"is_default"`
	Scope     []string `json:"scope"`
}

// rule is a DFW or IDS rule.
type rule struct {
	ID        string   `json:"id"`
	Scope     []string `json:"scope"`
	Disabled  bool     `json:"disabled"`
	IsDefault bool     `json:"is_default"`
}

// member is a realized VM member of a group.
type member struct {
	ID string `json:"id"`
}

// lbPool is a Policy LBPool.
type lbPool struct {
	MemberGroup *struct {
		GroupPath string `json:"group_path"`
	} `json:"member_group"`
}

// searchHit is a search API result.
type searchHit struct {
	ResourceType string `json:"resource_type"`
	ParentPath   string `json:"parent_path"`
}

// license is an installed licence.
type license struct {
	Description string `json:"description"`
	IsEval      bool   `json:"is_eval"`
}

// clusterInfo is GET /api/v1/cluster.
type clusterInfo struct {
	ClusterID string `json:"cluster_id"`
}

// nodeInfo is GET /api/v1/node.
type nodeInfo struct {
	ProductVersion string `json:"product_version"`
	Hostname       string `json:"hostname"`
}

// nsxErrorBody is the NSX error document.
type nsxErrorBody struct {
	ErrorCode    int    `json:"error_code"`
	ErrorMessage string `json:"error_message"`
}
