package simulator

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProtocol pins Basic authentication and startindex/pagesize paging.
func TestProtocol(t *testing.T) {
	st := State{User: "admin", Password: "pw"}
	for _, id := range []string{"virtualwire-1", "virtualwire-2", "virtualwire-3"} {
		st.VirtualWires = append(st.VirtualWires, VirtualWire{ID: id, Name: id, Portgroup: "dvportgroup-1"})
	}
	s := New(st)
	get := func(path, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "https://nsxv"+path, nil)
		req.SetBasicAuth("admin", pass)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if r := get("/api/2.0/vdn/virtualwires", "bad"); r.Code != http.StatusForbidden {
		t.Fatalf("bad password: %d", r.Code)
	}
	var doc struct {
		Total int      `xml:"dataPage>pagingInfo>totalCount"`
		IDs   []string `xml:"dataPage>virtualWire>objectId"`
	}
	r := get("/api/2.0/vdn/virtualwires?startindex=2&pagesize=2", "pw")
	if err := xml.Unmarshal(r.Body.Bytes(), &doc); err != nil || doc.Total != 3 || len(doc.IDs) != 1 || doc.IDs[0] != "virtualwire-3" {
		t.Fatalf("second page: %v %+v", err, doc)
	}
}
