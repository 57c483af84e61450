package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const namespace = "shop"

// Placeholders in a body template, each replaced per request.
const (
	uidMark  = "00000000-0000-0000-0000-00000000uid0"
	volMark  = "kube-api-access-VVVVV"
	timeMark = "2000-01-01T00:00:00Z"
)

// bodies are the AdmissionReview bodies the client sends: the pods of
// one Deployment's ReplicaSets, taken in turn, as during rollouts. Each
// pod is what the API server sends a mutating webhook at a ReplicaSet's
// pod CREATE: generateName and no name, the ReplicaSet's owner reference,
// the kube-controller-manager's managedFields entry (stamped with the
// second the request is sent), the defaulted spec (grace period 30 s,
// restart policy, DNS policy, scheduler, tolerations...) and the
// ServiceAccount admission plugin's kube-api-access-xxxxx volume and
// mount, whose suffix is random for every pod. One container with a
// named port (http, 8080), resources and env, no readinessProbe and no
// preStop: every pod is mutated. Every request has its own UID.
type bodies struct {
	templates [][]byte
	rng       *rand.Rand
}

func newBodies(replicaSets int) *bodies {
	b := &bodies{rng: rand.New(rand.NewPCG(1, 2))}
	for i := range replicaSets {
		b.templates = append(b.templates, reviewTemplate(i))
	}
	return b
}

func (b *bodies) describe() string {
	return fmt.Sprintf("%d ReplicaSets of Deployment %s/web taken in turn (each its own image and pod-template-hash), every pod with its own "+
		"kube-api-access-xxxxx volume name and request UID, managedFields stamped with the second of sending; %d bytes per AdmissionReview; "+
		"one Service (web, selector app=web, targetPort http) selects them all", len(b.templates), namespace, len(b.templates[0]))
}

// suffixChars are those of the API server's random name suffixes
// (k8s.io/apimachinery/pkg/util/rand).
const suffixChars = "bcdfghjklmnpqrstvwxz2456789"

// next is the body of request i, due at due. Only the sending goroutine
// calls it.
func (b *bodies) next(i int, due time.Time) []byte {
	t := b.templates[i%len(b.templates)]
	var suffix [5]byte
	for k := range suffix {
		suffix[k] = suffixChars[b.rng.IntN(len(suffixChars))]
	}
	uid := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", b.rng.Uint32(), b.rng.Uint32()&0xffff, b.rng.Uint32()&0xfff, b.rng.Uint32()&0xfff, b.rng.Uint64()&0xffffffffffff)
	out := bytes.ReplaceAll(t, []byte(volMark), append([]byte("kube-api-access-"), suffix[:]...))
	out = bytes.Replace(out, []byte(uidMark), []byte(uid), 1)
	return bytes.Replace(out, []byte(timeMark), []byte(due.UTC().Truncate(time.Second).Format(time.RFC3339)), 1)
}

// reviewTemplate is the AdmissionReview of a pod of ReplicaSet i, with
// the marks in place of what changes per request.
func reviewTemplate(i int) []byte {
	hash := fmt.Sprintf("%09x", 0x5d8f7c9b4+i*0x1111)[:9]
	grace, prio := int64(30), int32(0)
	tolSeconds := int64(300)
	trueVal, falseVal := true, false
	projMode, expiry := int32(420), int64(3607)
	fields := fmt.Sprintf(`{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"%s\"}":{}}},`+
		`"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"VERSION\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},`+
		`"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},`+
		`"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}`,
		rsUID(i))
	t := metav1.NewTime(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-" + hash + "-", Namespace: namespace,
			Labels: map[string]string{"app": "web", "pod-template-hash": hash},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-" + hash, UID: types.UID(rsUID(i)),
				Controller: &trueVal, BlockOwnerDeletion: &trueVal}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1", Time: &t, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}}},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: volMark, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: &projMode, Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}}}},
			Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/shop/web:1." + strconv.Itoa(i),
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "VERSION", Value: "1." + strconv.Itoa(i)}},
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
				VolumeMounts:           []corev1.VolumeMount{{Name: volMark, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}},
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy: corev1.PullIfNotPresent}},
			RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace, DNSPolicy: corev1.DNSClusterFirst,
			ServiceAccountName: "default", DeprecatedServiceAccount: "default", SecurityContext: &corev1.PodSecurityContext{},
			SchedulerName: corev1.DefaultSchedulerName, Priority: &prio, EnableServiceLinks: &trueVal,
			PreemptionPolicy: ptr(corev1.PreemptLowerPriority),
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tolSeconds},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tolSeconds}},
		},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		panic(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: uidMark,
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			RequestKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, RequestResource: &metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller", UID: "2c1f0c8e-7f3b-4a51-8d0a-77f1c2e0b9d4",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
			Object:  runtime.RawExtension{Raw: raw},
			DryRun:  &falseVal,
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	}
	out, err := json.Marshal(review)
	if err != nil {
		panic(err)
	}
	return out
}

func rsUID(i int) string { return fmt.Sprintf("8b3e1c52-0d4f-4e6a-9c71-%012x", 0x3a5b7c9d1e00+i) }
