// Package config loads the usagemeter YAML configuration: defaults in one
// place, strict parsing (unknown keys are errors), and validation whose
// errors name the key. Secret values have their own type that never prints.
package config
