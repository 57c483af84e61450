// Package version implements the version string rollguard reports.
package version

import "runtime/debug"

// version is set at link time: -ldflags "-X github.com/rollguard/rollguard/internal/version.version=v0.1.0".
var version = ""

// Get returns the release version, the module version when installed with
// go install, or "dev".
func Get() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
