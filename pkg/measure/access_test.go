package measure

import (
	"slices"
	"testing"

	"github.com/rollguard/rollguard/pkg/fleet/fleettest"
)

func TestPermissionsMatchRoleFile(t *testing.T) {
	t.Parallel()
	fleettest.MatchRoleFile(t, "../../"+RoleFile, map[string]bool{"rollguard-measure": false, "rollguard-measure-cluster": true},
		[]string{"rollguard-measure", "rollguard-measure-cluster"}, Permissions())
}

// TestPermissionsLeastPrivilege pins measure's permissions to the calls
// its code makes, so that the role file and Permissions cannot widen
// together unnoticed.
func TestPermissionsLeastPrivilege(t *testing.T) {
	t.Parallel()
	want := []string{
		"create deployments.apps in namespace NS",           // deploy
		"get deployments.apps in namespace NS",              // replicaFailure
		"list deployments.apps in namespace NS",             // Cleanup's wait
		"deletecollection deployments.apps in namespace NS", // Cleanup
		"list pods in namespace NS",                         // Starter, waitCanaries, cleanup, DeletePods' wait
		"create pods in namespace NS",                       // the probers
		"delete pods in namespace NS",                       // one canary a sample
		"deletecollection pods in namespace NS",             // DeletePods
		"get pods/proxy in namespace NS",                    // state, Clock, Progress
		"create pods/proxy in namespace NS",                 // release, Start, Stop
		"create services in namespace NS",
		"list services in namespace NS",
		"delete services in namespace NS",
		"list limitranges in namespace NS", // namespaceRules
		"get namespaces (cluster-wide)",
		"create namespaces (cluster-wide)",
		"delete namespaces (cluster-wide)",
		"list nodes (cluster-wide)",
	}
	var got []string
	for _, p := range Permissions() {
		got = append(got, fleettest.Key(p))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Permissions:\n%q\nwant\n%q", got, want)
	}
}
