package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

// DocsURL is where each rule's page lives; SARIF viewers link it.
const DocsURL = "https://github.com/rollguard/rollguard/blob/main/docs/rules/"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name"`
	ShortDescription     sarifText       `json:"shortDescription"`
	FullDescription      sarifText       `json:"fullDescription"`
	Help                 sarifText       `json:"help"`
	HelpURI              string          `json:"helpUri"`
	DefaultConfiguration sarifConfig     `json:"defaultConfiguration"`
	Properties           sarifProperties `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifProperties struct {
	Tags []string `json:"tags"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
}

type sarifLocation struct {
	Physical *sarifPhysical `json:"physicalLocation,omitempty"`
	Logical  []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification"`
}

var sarifLevel = map[rules.Severity]string{rules.Error: "error", rules.Warning: "warning", rules.Info: "note"}

// SARIF writes a SARIF 2.1.0 log, the format GitHub code scanning shows
// inline on pull requests. Suppressed findings are included with an
// in-source suppression, as the format intends; input errors are tool
// notifications.
func SARIF(w io.Writer, in *Input) error {
	ns := in.defaultNS()
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "rollguard", Version: in.Version,
			InformationURI: "https://github.com/rollguard/rollguard", Rules: []sarifRule{}}},
		Results: []sarifResult{},
	}
	index := map[*rules.Rule]int{}
	for i, r := range in.Report.Rules {
		index[r] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: r.ID, Name: r.Name,
			ShortDescription:     sarifText{Text: r.Summary},
			FullDescription:      sarifText{Text: oneLine(r.Why)},
			Help:                 sarifText{Text: oneLine(r.Fix), Markdown: r.Markdown()},
			HelpURI:              DocsURL + r.ID + ".md",
			DefaultConfiguration: sarifConfig{Level: sarifLevel[r.Severity]},
			Properties:           sarifProperties{Tags: []string{"rollout", string(r.Case)}},
		})
	}
	add := func(f rules.Finding) {
		res := sarifResult{
			RuleID: f.Rule.ID, RuleIndex: index[f.Rule], Level: sarifLevel[f.Severity],
			Message:             sarifText{Text: fmt.Sprintf("%s: %s. Fix: %s.", objectName(f.Object, ns), f.Message, f.Fix)},
			Locations:           []sarifLocation{location(f.Source, f.Object, ns)},
			PartialFingerprints: map[string]string{"rollguardFinding/v1": fingerprint(f, ns)},
		}
		if f.Suppressed {
			res.Suppressions = []sarifSuppression{{Kind: "inSource", Justification: f.SuppressReason}}
		}
		run.Results = append(run.Results, res)
	}
	for _, f := range in.Report.Findings {
		add(f)
	}
	for _, f := range in.Report.Suppressed {
		add(f)
	}
	inv := sarifInvocation{ExecutionSuccessful: len(in.Load.Errors) == 0, Notifications: []sarifNotification{}}
	for _, err := range in.Load.Errors {
		n := sarifNotification{Level: "error", Message: sarifText{Text: err.Error()}}
		var me *manifest.Error
		if errors.As(err, &me) && me.File != manifest.StdinName {
			loc := sarifLocation{Physical: &sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(me.File)}}}
			if me.Line > 0 {
				loc.Physical.Region = &sarifRegion{StartLine: me.Line}
			}
			n.Locations = []sarifLocation{loc}
		}
		inv.Notifications = append(inv.Notifications, n)
	}
	for _, warn := range in.Report.Warnings {
		inv.Notifications = append(inv.Notifications, sarifNotification{Level: "warning", Message: sarifText{Text: warn}})
	}
	run.Invocations = []sarifInvocation{inv}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

func location(src manifest.Source, o *manifest.Object, ns string) sarifLocation {
	ns = namespaceOf(o, ns)
	loc := sarifLocation{Logical: []sarifLogical{{Name: o.Name, FullyQualifiedName: ns + "/" + o.Kind + "/" + o.Name, Kind: "object"}}}
	if src.File != "" && src.File != manifest.StdinName {
		loc.Physical = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(src.File)}}
		if src.Line > 0 {
			loc.Physical.Region = &sarifRegion{StartLine: src.Line}
		}
	}
	return loc
}

// fileURI renders a path as a relative URI reference, as SARIF wants.
func fileURI(path string) string {
	u := url.URL{Path: filepath.ToSlash(filepath.Clean(path))}
	return u.EscapedPath()
}

// fingerprint identifies a finding across edits that move lines: the rule,
// the object, the container and the field path (so two ports of one
// Service stay apart).
func fingerprint(f rules.Finding, ns string) string {
	ns = namespaceOf(f.Object, ns)
	sum := sha256.Sum256([]byte(strings.Join([]string{f.Rule.ID, ns, f.Object.Kind, f.Object.Name, f.Container, f.Path}, "\x00")))
	return hex.EncodeToString(sum[:8])
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
