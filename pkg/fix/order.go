package fix

import (
	yaml "go.yaml.in/yaml/v3"
)

// Where a new field goes. A field added at the end of a mapping is easily
// missed: terminationGracePeriodSeconds after a long containers list, or
// minReadySeconds after the whole pod template. So fix places a new key
// among its siblings by a reading order: Kubernetes' own field order (the
// order of the fields in the API's Go types), grouped into ranks of fields
// that belong together, with two changes
// that follow how people write manifests: imagePullPolicy sits with image,
// and the long parts (the container lists and volumes of a pod spec, the
// selector and pod template of a workload spec) come last.
//
// The rule: a new key goes right after the existing key of the highest rank
// not above its own (the last one in the file, on a tie); when every
// existing key ranks above it, it goes before the first of them in the
// file. Keys the table does not know are not anchors, and a mapping the
// table does not know, or one with no known key, gets the new key at its
// end.

// Ranks of the keys of a container (core/v1 Container).
var containerRanks = ranks(
	[]string{"name"},
	[]string{"image", "imagePullPolicy"},
	[]string{"command", "args", "workingDir"},
	[]string{"ports"},
	[]string{"envFrom", "env"},
	[]string{"resources", "resizePolicy", "restartPolicy", "restartPolicyRules"},
	[]string{"volumeMounts", "volumeDevices"},
	[]string{"livenessProbe", "readinessProbe", "startupProbe"},
	[]string{"lifecycle"},
	[]string{"terminationMessagePath", "terminationMessagePolicy"},
	[]string{"securityContext"},
	[]string{"stdin", "stdinOnce", "tty"},
)

// Ranks of the keys of a pod spec (core/v1 PodSpec): its settings in the
// API's order, then the container lists and volumes.
var podSpecRanks = ranks(
	[]string{"restartPolicy"},
	[]string{"terminationGracePeriodSeconds"},
	[]string{"activeDeadlineSeconds"},
	[]string{"dnsPolicy"},
	[]string{"nodeSelector"},
	[]string{"serviceAccountName", "serviceAccount", "automountServiceAccountToken"},
	[]string{"nodeName"},
	[]string{"hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"},
	[]string{"securityContext"},
	[]string{"imagePullSecrets"},
	[]string{"hostname", "subdomain"},
	[]string{"affinity"},
	[]string{"schedulerName"},
	[]string{"tolerations"},
	[]string{"hostAliases"},
	[]string{"priorityClassName", "priority"},
	[]string{"dnsConfig"},
	[]string{"readinessGates"},
	[]string{"runtimeClassName"},
	[]string{"enableServiceLinks"},
	[]string{"preemptionPolicy"},
	[]string{"overhead"},
	[]string{"topologySpreadConstraints"},
	[]string{"setHostnameAsFQDN", "os", "hostUsers", "schedulingGates", "resourceClaims", "resources", "hostnameOverride"},
	[]string{"initContainers"},
	[]string{"containers"},
	[]string{"ephemeralContainers"},
	[]string{"volumes"},
)

// Ranks of the keys of a workload's spec (Deployment, StatefulSet,
// DaemonSet, ReplicaSet, Argo Rollout): the rollout settings together, the
// selector and pod template after them.
var workloadSpecRanks = ranks(
	[]string{"replicas", "serviceName"},
	[]string{"podManagementPolicy", "strategy", "updateStrategy"},
	[]string{"minReadySeconds"},
	[]string{"progressDeadlineSeconds", "revisionHistoryLimit", "paused", "persistentVolumeClaimRetentionPolicy", "ordinals"},
	[]string{"selector"},
	[]string{"template", "workloadRef"},
	[]string{"volumeClaimTemplates"},
)

var lifecycleRanks = ranks([]string{"postStart"}, []string{"preStop"}, []string{"stopSignal"})

var strategyRanks = ranks([]string{"type"}, []string{"rollingUpdate", "canary", "blueGreen"})

// Ranks of the keys of a rolling update (Deployment, DaemonSet,
// StatefulSet) or an Argo canary: the two bounds are written in either
// order, so they share a rank; a canary's steps and routing come after.
var rollingRanks = ranks(
	[]string{"maxSurge", "maxUnavailable", "partition"},
	[]string{"canaryService", "stableService"},
	[]string{"steps", "trafficRouting", "analysis"},
)

var objectRanks = ranks([]string{"apiVersion"}, []string{"kind"}, []string{"metadata"}, []string{"spec"}, []string{"status"})

var workloadKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true, "Rollout": true}

func ranks(groups ...[]string) map[string]int {
	m := map[string]int{}
	for r, g := range groups {
		for _, k := range g {
			m[k] = r
		}
	}
	return m
}

// fieldRanks returns the reading order of the mapping at parent (the path
// below the object) in an object of kind, or nil when fix does not know
// what the mapping is.
func fieldRanks(kind string, parent []segment) map[string]int {
	n := len(parent)
	last := func(back int) string {
		if n < back || parent[n-back].index >= 0 {
			return ""
		}
		return parent[n-back].key
	}
	switch {
	case n == 0:
		return objectRanks
	case parent[n-1].index >= 0:
		switch last(2) {
		case "containers", "initContainers", "ephemeralContainers":
			return containerRanks
		}
		return nil
	case n == 1 && last(1) == "spec" && kind == "Pod":
		return podSpecRanks
	case n == 1 && last(1) == "spec" && workloadKinds[kind]:
		return workloadSpecRanks
	case last(1) == "spec" && last(2) == "template":
		return podSpecRanks
	case last(1) == "lifecycle":
		return lifecycleRanks
	case last(1) == "strategy" || last(1) == "updateStrategy":
		return strategyRanks
	case last(1) == "rollingUpdate" || last(1) == "canary":
		return rollingRanks
	}
	return nil
}

// placement says where key goes in mapping m: after the key node after,
// before the key node before, or (both nil) at the end.
func placement(m *yaml.Node, key string, order map[string]int) (after, before *yaml.Node) {
	r, ok := order[key]
	if !ok {
		return nil, nil
	}
	bestRank := -1
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		kr, known := order[k.Value]
		if !known || k.Kind != yaml.ScalarNode {
			continue
		}
		switch {
		case kr <= r && kr >= bestRank:
			// >=: on a tie the later key in the file wins, so a new probe
			// goes after the last probe there is.
			after, bestRank = k, kr
		case kr > r && before == nil:
			before = k
		}
	}
	if after != nil {
		return after, nil
	}
	return nil, before
}
