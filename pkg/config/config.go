// Package config implements rollguard's configuration file: the settings the
// rules measure against, per-rule severities, disabled rules and paths to
// skip. Unknown keys are errors, so that a misspelt setting is never
// silently ignored.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/rollguard/rollguard/pkg/rules"
)

// Kind and APIVersion identify a configuration file.
const (
	APIVersion = "rollguard.io/v1alpha1"
	Kind       = "Config"
)

// File is the configuration file's shape.
//
//	apiVersion: rollguard.io/v1alpha1
//	kind: Config
//	propagationBudget: 8s
//	drainAllowance: 10s
//	failOn: warning
//	disabledRules: [RG304]
//	severity: {RG305: warning}
//	ignorePaths: ["test/**", "**/*-dev.yaml"]
//	telemetryPorts: [metrics, "*-metrics", admin]
//	deny: [RG201]
//	k8sVersion: "1.29"
type File struct {
	APIVersion        string            `yaml:"apiVersion"`
	Kind              string            `yaml:"kind"`
	PropagationBudget string            `yaml:"propagationBudget"`
	DrainAllowance    string            `yaml:"drainAllowance"`
	FailOn            string            `yaml:"failOn"`
	DisabledRules     []string          `yaml:"disabledRules"`
	Severity          map[string]string `yaml:"severity"`
	IgnorePaths       []string          `yaml:"ignorePaths"`
	TelemetryPorts    *[]string         `yaml:"telemetryPorts"`
	Deny              []string          `yaml:"deny"`
	K8sVersion        string            `yaml:"k8sVersion"`
}

// Config is a validated configuration. Zero values mean "not set".
type Config struct {
	PropagationBudget time.Duration
	DrainAllowance    time.Duration
	FailOn            rules.Severity
	Disabled          map[*rules.Rule]bool
	Severity          map[*rules.Rule]rules.Severity
	IgnorePaths       []string
	// TelemetryPorts replaces the port-name patterns that mark a port as
	// only scraped; nil keeps the defaults, an empty list marks none.
	TelemetryPorts []string
	// Deny lists the rules whose findings the admission webhook turns into
	// denials instead of warnings.
	Deny map[*rules.Rule]bool
	// KubeMinor is the minor version of the oldest Kubernetes 1.x the pods
	// run on (their oldest kubelet), as fix's --k8s-version; 0 when not set.
	KubeMinor int
}

// Load reads and validates a configuration file against a registry.
func Load(path string, reg *rules.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data, reg)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse validates configuration text.
func Parse(data []byte, reg *rules.Registry) (*Config, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if f.APIVersion != "" && f.APIVersion != APIVersion {
		return nil, fmt.Errorf("apiVersion %q: want %s", f.APIVersion, APIVersion)
	}
	if f.Kind != "" && f.Kind != Kind {
		return nil, fmt.Errorf("kind %q: want %s", f.Kind, Kind)
	}
	cfg := &Config{Disabled: map[*rules.Rule]bool{}, Severity: map[*rules.Rule]rules.Severity{}, Deny: map[*rules.Rule]bool{}, IgnorePaths: f.IgnorePaths}
	if f.TelemetryPorts != nil {
		cfg.TelemetryPorts = append([]string{}, *f.TelemetryPorts...)
		for _, p := range cfg.TelemetryPorts {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("telemetryPorts: %q is not a valid pattern: %w", p, err)
			}
		}
	}
	var err error
	if f.K8sVersion != "" {
		if cfg.KubeMinor, err = ParseK8sVersion(f.K8sVersion); err != nil {
			return nil, fmt.Errorf("k8sVersion: %w", err)
		}
	}
	if cfg.PropagationBudget, err = duration("propagationBudget", f.PropagationBudget); err != nil {
		return nil, err
	}
	if cfg.DrainAllowance, err = duration("drainAllowance", f.DrainAllowance); err != nil {
		return nil, err
	}
	if f.FailOn != "" {
		if cfg.FailOn, err = rules.ParseSeverity(f.FailOn); err != nil {
			return nil, fmt.Errorf("failOn: %w", err)
		}
	}
	for _, id := range f.DisabledRules {
		r := reg.Lookup(id)
		if r == nil {
			return nil, fmt.Errorf("disabledRules: unknown rule %q (see rollguard rules)", id)
		}
		cfg.Disabled[r] = true
	}
	for _, id := range f.Deny {
		r := reg.Lookup(id)
		if r == nil {
			return nil, fmt.Errorf("deny: unknown rule %q (see rollguard rules)", id)
		}
		cfg.Deny[r] = true
	}
	for id, sev := range f.Severity {
		r := reg.Lookup(id)
		if r == nil {
			return nil, fmt.Errorf("severity: unknown rule %q (see rollguard rules)", id)
		}
		s, err := rules.ParseSeverity(sev)
		if err != nil {
			return nil, fmt.Errorf("severity of %s: %w", id, err)
		}
		cfg.Severity[r] = s
	}
	return cfg, nil
}

var k8sVersionRe = regexp.MustCompile(`^v?1\.(\d+)(\.\d+)?([-+][0-9A-Za-z.+-]*)?$`)

// ParseK8sVersion reads a Kubernetes version such as 1.29, v1.29, 1.29.4
// or a provider's build as kubectl get nodes shows it (v1.29.3-eks-ae9a62a,
// v1.29.1-gke.1589000) and returns its minor version.
func ParseK8sVersion(s string) (int, error) {
	m := k8sVersionRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a Kubernetes version such as 1.29", s)
	}
	minor, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, fmt.Errorf("%q is not a Kubernetes version such as 1.29", s)
	}
	return minor, nil
}

func duration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a duration such as 5s or 1m30s", field, s)
	}
	return d, nil
}
