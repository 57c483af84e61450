package webhook

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/rules"
)

// The mutating handler's result cache.
//
// The pods of one ReplicaSet are the same pod, and a rollout creates them
// in bursts, so the handler keeps what the rules made of a pod (the fixed
// spec, the annotation, the warnings) under a key of everything the
// mutation reads:
//   - the pod's name and generateName, labels, annotations and spec (as
//     JSON), the namespace and the webhook's own;
//   - every Service that selects the pod, in order: its namespace, name,
//     UID and resourceVersion when it has both (an informer's objects
//     always do, and a new resourceVersion comes with every change), else
//     its whole JSON;
//   - the Settings in force, by pointer (a reload stores new ones whole,
//     and Store never changes the ones stored), and the rule Registry, by
//     pointer. The key holds both pointers, so neither can be freed and
//     reused for other settings while an entry refers to it; and a lookup
//     under new Settings drops every entry made under the old ones.
//
// The one part of a ReplicaSet's pods that differs from pod to pod is the
// name of the ServiceAccount token volume, kube-api-access-xxxxx, whose
// suffix the API server draws at random for each pod. The key reads the
// spec with that name replaced by a mark, and the cached spec holds the
// mark in its place, replaced by the pod's own name on every hit. That is
// exact when the mutation treats the name as an opaque string, renaming
// every occurrence in the output as in the input: no rule reads volumes,
// and the mark is used only when the name occurs nowhere in the pod but
// its spec, nor in the annotation or warnings made from it, and the mark
// occurs nowhere in the spec. TestCacheDifferential holds cached and
// uncached responses equal over the rule fixtures, with volume names
// renamed between requests.
//
// The cache is bounded in entries and in bytes (an entry's spec JSON,
// annotation and warnings), skips results larger than a sixteenth of its
// bytes, and evicts the least recently used. Concurrent requests for one
// key wait for the first one's result instead of running the rules again.
// Errors are not cached.

// Cache bounds.
const (
	// DefaultCacheSize is the number of results cached when
	// Mutator.CacheSize is 0.
	DefaultCacheSize = 512
	// cacheBytes bounds the bytes held by the cache's entries.
	cacheBytes = 16 << 20
	// entryOverhead is counted for each entry beyond its byte slices.
	entryOverhead = 256
)

// tokenVolumePrefix starts the name of the ServiceAccount admission
// plugin's token volume; five random characters follow.
const tokenVolumePrefix = "kube-api-access-"

// tokenMark stands for the token volume's name in keys and cached specs:
// as long as the names it stands for, and never a volume name itself.
const tokenMark = "kube-api-access-#####"

// cacheKey identifies a mutation's inputs.
type cacheKey struct {
	sum      [sha256.Size]byte
	settings *Settings // nil: the defaults, when none were stored
	registry *rules.Registry
}

// cachedResult is what the rules made of a pod, with the token volume's
// name (if any) replaced by tokenMark in spec.
type cachedResult struct {
	changed    bool
	spec       []byte // the fixed spec as JSON; nil when nothing changes
	annotation string
	warnings   []string
	size       int
}

// cacheValue is what a resultCache holds: a *cachedResult or a
// *cachedResponse.
type cacheValue interface {
	// bytes is what the value is counted for against the cache's bound.
	bytes() int
}

func (r *cachedResult) bytes() int { return r.size }

type cacheEntry struct {
	key cacheKey
	res cacheValue
}

// call is a computation in flight, which later requests for its key wait
// for.
type call struct {
	done chan struct{}
	res  cacheValue // nil: not cacheable, or an error; the waiters compute
}

// resultCache is a bounded LRU of cacheValues, safe for concurrent use.
type resultCache struct {
	maxEntries, maxBytes int

	mu       sync.Mutex
	ll       *list.List // of *cacheEntry, the most recently used first
	entries  map[cacheKey]*list.Element
	inflight map[cacheKey]*call
	bytes    int
	settings *Settings // those of the entries
	hits     atomic.Uint64
	misses   atomic.Uint64
}

func newResultCache(maxEntries, maxBytes int) *resultCache {
	return &resultCache{maxEntries: maxEntries, maxBytes: maxBytes, ll: list.New(),
		entries: map[cacheKey]*list.Element{}, inflight: map[cacheKey]*call{}}
}

// get returns the cached result of k, or waits for one in flight; or, when
// there is neither, registers the caller's computation, which it must end
// with put.
func (c *resultCache) get(k cacheKey) (res cacheValue, compute bool) {
	c.mu.Lock()
	c.settle(k)
	if e, ok := c.entries[k]; ok {
		c.ll.MoveToFront(e)
		c.mu.Unlock()
		c.hits.Add(1)
		return e.Value.(*cacheEntry).res, false
	}
	if cl, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		<-cl.done
		if cl.res != nil {
			c.hits.Add(1)
			return cl.res, false
		}
		c.misses.Add(1)
		return nil, false // the first one could not cache: compute alone
	}
	c.inflight[k] = &call{done: make(chan struct{})}
	c.mu.Unlock()
	c.misses.Add(1)
	return nil, true
}

// put ends the computation get registered for k, with its result (nil for
// none to keep), and stores the result when it fits.
func (c *resultCache) put(k cacheKey, res cacheValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.inflight[k]; ok {
		cl.res = res
		close(cl.done)
		delete(c.inflight, k)
	}
	c.add(k, res)
}

// settle drops every entry when k's Settings are not the entries': none
// made under the old can be hit again. c.mu is held.
func (c *resultCache) settle(k cacheKey) {
	if k.settings != c.settings {
		c.ll.Init()
		clear(c.entries)
		c.bytes, c.settings = 0, k.settings
	}
}

// lookup returns the value of k, or nil; it waits for nothing in flight.
func (c *resultCache) lookup(k cacheKey) cacheValue {
	c.mu.Lock()
	c.settle(k)
	e, ok := c.entries[k]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	c.ll.MoveToFront(e)
	c.mu.Unlock()
	c.hits.Add(1)
	return e.Value.(*cacheEntry).res
}

// store keeps res under k when it fits.
func (c *resultCache) store(k cacheKey, res cacheValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(k, res)
}

// add keeps res under k when it fits, evicting the least recently used
// entries as the bounds require. c.mu is held.
func (c *resultCache) add(k cacheKey, res cacheValue) {
	if res == nil || res.bytes() > c.maxBytes/16 || k.settings != c.settings {
		return
	}
	if e, ok := c.entries[k]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.entries[k] = c.ll.PushFront(&cacheEntry{key: k, res: res})
	c.bytes += res.bytes()
	for c.ll.Len() > c.maxEntries || c.bytes > c.maxBytes {
		last := c.ll.Back()
		e := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.entries, e.key)
		c.bytes -= e.res.bytes()
	}
}

// len is the number of entries.
func (c *resultCache) len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}

// newCachedResult makes the cacheable form of a mutation of a pod whose
// token volume is named token ("" for none): the spec with the name
// replaced by tokenMark. It returns nil when the name occurs in the
// annotation or warnings, where no mark stands for it.
func newCachedResult(m *mutation, token string) *cachedResult {
	r := &cachedResult{changed: m.changed, annotation: m.annotation, warnings: slices.Clone(m.warnings)}
	if m.changed {
		r.spec = m.specJSON
		if token != "" {
			if !wholeValues(m.specJSON, token) || bytes.Contains(m.specJSON, []byte(tokenMark)) {
				return nil
			}
			r.spec = bytes.ReplaceAll(m.specJSON, quoted(token), quoted(tokenMark))
		}
	}
	r.size = entryOverhead + len(r.spec) + len(r.annotation)
	for _, w := range r.warnings {
		r.size += len(w)
		if token != "" && strings.Contains(w, token) {
			return nil
		}
	}
	if token != "" && strings.Contains(r.annotation, token) {
		return nil
	}
	return r
}

// mutation is the cached result made the pod's own: the mark in its
// spec replaced by the pod's token volume name.
func (r *cachedResult) mutation(token string) *mutation {
	m := &mutation{changed: r.changed, annotation: r.annotation, warnings: slices.Clone(r.warnings)}
	if r.changed {
		m.specJSON = r.spec
		if token != "" {
			m.specJSON = bytes.ReplaceAll(r.spec, quoted(tokenMark), quoted(token))
		}
	}
	return m
}

func quoted(s string) []byte { return []byte(`"` + s + `"`) }

// wholeValues reports whether every occurrence of s in b, JSON as
// json.Marshal writes it (no spaces), is a whole string: a value or a key,
// not part of a longer string.
func wholeValues(b []byte, s string) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(s))
		if j < 0 {
			return true
		}
		at, end := i+j, i+j+len(s)
		if at < 2 || b[at-1] != '"' || !strings.ContainsRune(":,[{", rune(b[at-2])) ||
			end+1 >= len(b) || b[end] != '"' || !strings.ContainsRune(":,]}", rune(b[end+1])) {
			return false
		}
		i = end
	}
}

// tokenVolume is the name of the pod's ServiceAccount token volume, as the
// API server names it (kube-api-access- and five lower-case letters or
// digits, a projected volume), or "" when it has none, or more than one.
func tokenVolume(spec *corev1.PodSpec) string {
	name := ""
	for _, v := range spec.Volumes {
		if len(v.Name) != len(tokenMark) || !strings.HasPrefix(v.Name, tokenVolumePrefix) || v.Projected == nil {
			continue
		}
		for _, c := range v.Name[len(tokenVolumePrefix):] {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return ""
			}
		}
		if name != "" {
			return ""
		}
		name = v.Name
	}
	return name
}

// keyOf is the cache key of a mutation's inputs, and the name of the
// pod's token volume that the key and the cached spec replace by
// tokenMark ("" for none). ok is false when the inputs cannot be keyed.
func (m *Mutator) keyOf(pod *corev1.Pod, namespace string, selecting []*corev1.Service, settings *Settings) (k cacheKey, token string, ok bool) {
	spec, err := json.Marshal(&pod.Spec)
	if err != nil {
		return k, "", false
	}
	meta, err := json.Marshal(struct {
		Name         string            `json:"n"`
		GenerateName string            `json:"g"`
		Labels       map[string]string `json:"l"`
		Annotations  map[string]string `json:"a"`
	}{pod.Name, pod.GenerateName, pod.Labels, pod.Annotations})
	if err != nil {
		return k, "", false
	}
	if bytes.Contains(spec, []byte(tokenMark)) {
		return k, "", false
	}
	if token = tokenVolume(&pod.Spec); token != "" {
		if !wholeValues(spec, token) || bytes.Contains(meta, []byte(token)) || strings.Contains(namespace, token) || strings.Contains(m.Namespace, token) {
			token = "" // the name stands elsewhere: keyed as it is
		} else {
			spec = bytes.ReplaceAll(spec, quoted(token), quoted(tokenMark))
		}
	}
	h := sha256.New()
	field := fielder(h)
	field([]byte("rollguard webhook mutation v1"))
	field([]byte(m.Namespace))
	field([]byte(namespace))
	field(meta)
	field(spec)
	if !hashServices(field, selecting) {
		return k, "", false
	}
	h.Sum(k.sum[:0])
	k.settings, k.registry = settings, m.Registry
	return k, token, true
}

// CacheStats reports, since the Mutator's first request, the requests
// answered without running the rules (hits) and those that ran them
// (misses), and the entries of its caches and their bytes now; all 0
// without a cache.
func (m *Mutator) CacheStats() (hits, misses uint64, entries, bytes int) {
	c, r := m.resultCache(), m.responseCache()
	if c == nil {
		return 0, 0, 0, 0
	}
	e1, b1 := c.len()
	e2, b2 := r.len()
	return c.hits.Load() + r.hits.Load(), c.misses.Load(), e1 + e2, b1 + b2
}

// resultCache is the Mutator's cache of what the rules made of pods, made
// at its first use; nil when CacheSize is negative.
func (m *Mutator) resultCache() *resultCache {
	m.cacheOnce.Do(func() {
		n := m.CacheSize
		if n < 0 {
			return
		}
		if n == 0 {
			n = DefaultCacheSize
		}
		m.cache, m.responses = newResultCache(n, cacheBytes), newResultCache(n, cacheBytes)
	})
	return m.cache
}

// responseCache is the Mutator's cache of responses to requests, made
// with resultCache.
func (m *Mutator) responseCache() *resultCache {
	m.resultCache()
	return m.responses
}

// The response cache.
//
// A rollout's pods reach the webhook byte for byte alike but for the
// token volume's name, as long as the kube-controller-manager's
// managedFields entry carries the same second. Handle keys the whole
// response on the request's object as it came (the name replaced by
// tokenMark, as for results), the namespace, the webhook's own, every
// Service of the namespace (as results key the selecting ones) and the
// Settings and Registry: everything a response is made of. So the same
// request skips decoding, the rules, the marshalling and the diff.
// A response is kept only when the name the key replaced is the one the
// result cache would replace (the pod's token volume, named nowhere but
// in its spec), and the patch names it only as whole strings; the name
// is then put back into the patch on every hit.

// cachedResponse is a response to a request, the token volume's name
// replaced by tokenMark in its patch.
type cachedResponse struct {
	patched  bool   // from a diff; else admission.Allowed("")
	patch    []byte // the operations, as JSON
	warnings []string
	size     int
}

func (r *cachedResponse) bytes() int { return r.size }

// newCachedResponse makes the cacheable form of the response to a request
// for pod, whose key replaced token by tokenMark; nil when it cannot be
// kept.
func newCachedResponse(pod *corev1.Pod, namespace string, m *Mutator, token string, resp admission.Response, patched bool) cacheValue {
	if token != "" && token != m.tokenOf(pod, namespace) {
		return nil
	}
	r := &cachedResponse{patched: patched, warnings: slices.Clone(resp.Warnings)}
	if patched {
		b, err := json.Marshal(resp.Patches)
		if err != nil {
			return nil
		}
		if token != "" {
			if !wholeValues(b, token) || bytes.Contains(b, []byte(tokenMark)) {
				return nil
			}
			b = bytes.ReplaceAll(b, quoted(token), quoted(tokenMark))
		}
		r.patch = b
	}
	r.size = entryOverhead + len(r.patch)
	for _, w := range r.warnings {
		r.size += len(w)
		if token != "" && strings.Contains(w, token) {
			return nil
		}
	}
	return r
}

// response is the cached response made the request's own.
func (r *cachedResponse) response(token string) admission.Response {
	if !r.patched {
		resp := admission.Allowed("")
		resp.Warnings = slices.Clone(r.warnings)
		return resp
	}
	b := r.patch
	if token != "" {
		b = bytes.ReplaceAll(b, quoted(tokenMark), quoted(token))
	}
	var resp admission.Response
	if err := json.Unmarshal(b, &resp.Patches); err != nil {
		return admission.Errored(http.StatusInternalServerError, err) // never: the JSON is json.Marshal's
	}
	resp.Allowed = true
	if len(resp.Patches) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	resp.Warnings = slices.Clone(r.warnings)
	return resp
}

// rawToken finds the token volume's name in a request's object: the
// value of a "name" of the form kube-api-access-xxxxx, when every
// kube-api-access- in the object starts that one name; else "".
func rawToken(raw []byte) string {
	const at = `"name":"` + tokenVolumePrefix
	i := bytes.Index(raw, []byte(at))
	if i < 0 {
		return ""
	}
	start := i + len(`"name":"`)
	end := start + len(tokenMark)
	if end >= len(raw) || raw[end] != '"' {
		return ""
	}
	name := string(raw[start:end])
	for _, c := range name[len(tokenVolumePrefix):] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return ""
		}
	}
	if bytes.Count(raw, []byte(tokenVolumePrefix)) != bytes.Count(raw, []byte(name)) {
		return ""
	}
	return name
}

// rawKey is the response cache's key of a request: its object as it came,
// the token volume's name (returned) replaced by tokenMark when it stands
// only as whole strings, the namespaces, the namespace's Services, the
// Settings and Registry.
func (m *Mutator) rawKey(raw []byte, namespace string, svcs []*corev1.Service, settings *Settings) (k cacheKey, token string, ok bool) {
	if bytes.Contains(raw, []byte(tokenMark)) {
		return k, "", false
	}
	norm := raw
	if token = rawToken(raw); token != "" {
		if wholeValues(raw, token) {
			norm = bytes.ReplaceAll(raw, quoted(token), quoted(tokenMark))
		} else {
			token = ""
		}
	}
	h := sha256.New()
	field := fielder(h)
	field([]byte("rollguard webhook response v1"))
	field([]byte(m.Namespace))
	field([]byte(namespace))
	field(norm)
	if !hashServices(field, svcs) {
		return k, "", false
	}
	h.Sum(k.sum[:0])
	k.settings, k.registry = settings, m.Registry
	return k, token, true
}

// fielder writes length-prefixed fields to h.
func fielder(h io.Writer) func([]byte) {
	return func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
}

// hashServices writes Services as keys read them: by reference when an
// informer's (UID and resourceVersion), else whole.
func hashServices(field func([]byte), svcs []*corev1.Service) bool {
	for _, s := range svcs {
		if s.UID != "" && s.ResourceVersion != "" {
			field([]byte("ref"))
			field([]byte(s.Namespace))
			field([]byte(s.Name))
			field([]byte(s.UID))
			field([]byte(s.ResourceVersion))
			continue
		}
		b, err := json.Marshal(s)
		if err != nil {
			return false
		}
		field([]byte("json"))
		field(b)
	}
	return true
}

// tokenOf is the name of the pod's token volume that keyOf replaces by
// tokenMark, or "".
func (m *Mutator) tokenOf(pod *corev1.Pod, namespace string) string {
	_, token, ok := m.keyOf(pod, namespace, nil, nil)
	if !ok {
		return ""
	}
	return token
}
