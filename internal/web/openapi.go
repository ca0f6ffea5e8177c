package web

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the API's OpenAPI 3 document, written as YAML.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPI is the API's OpenAPI 3 document as JSON (served at
// /api/v1/openapi.json).
var OpenAPI = mustJSON(openAPIYAML)

func mustJSON(y []byte) []byte {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		panic("internal/web: openapi.yaml: " + err.Error())
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("internal/web: openapi.yaml: " + err.Error())
	}
	return b
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
