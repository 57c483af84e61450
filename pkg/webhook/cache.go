package webhook

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

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

type cacheEntry struct {
	key cacheKey
	res *cachedResult
}

// call is a computation in flight, which later requests for its key wait
// for.
type call struct {
	done chan struct{}
	res  *cachedResult // nil: not cacheable, or an error; the waiters compute
}

// resultCache is a bounded LRU of cachedResults, safe for concurrent use.
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
func (c *resultCache) get(k cacheKey) (res *cachedResult, compute bool) {
	c.mu.Lock()
	if k.settings != c.settings {
		// New Settings: the entries of the old can never be hit again.
		c.ll.Init()
		clear(c.entries)
		c.bytes, c.settings = 0, k.settings
	}
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
func (c *resultCache) put(k cacheKey, res *cachedResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.inflight[k]; ok {
		cl.res = res
		close(cl.done)
		delete(c.inflight, k)
	}
	if res == nil || res.size > c.maxBytes/16 || k.settings != c.settings {
		return
	}
	if e, ok := c.entries[k]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.entries[k] = c.ll.PushFront(&cacheEntry{key: k, res: res})
	c.bytes += res.size
	for c.ll.Len() > c.maxEntries || c.bytes > c.maxBytes {
		last := c.ll.Back()
		e := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.entries, e.key)
		c.bytes -= e.res.size
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
	field := func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("rollguard webhook mutation v1"))
	field([]byte(m.Namespace))
	field([]byte(namespace))
	field(meta)
	field(spec)
	for _, s := range selecting {
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
			return k, "", false
		}
		field([]byte("json"))
		field(b)
	}
	h.Sum(k.sum[:0])
	k.settings, k.registry = settings, m.Registry
	return k, token, true
}

// CacheStats reports the result cache's hits and misses since the
// Mutator's first request, and its entries and their bytes now; all 0
// without a cache.
func (m *Mutator) CacheStats() (hits, misses uint64, entries, bytes int) {
	c := m.resultCache()
	if c == nil {
		return 0, 0, 0, 0
	}
	entries, bytes = c.len()
	return c.hits.Load(), c.misses.Load(), entries, bytes
}

// resultCache is the Mutator's cache, made at its first use; nil when
// CacheSize is negative.
func (m *Mutator) resultCache() *resultCache {
	m.cacheOnce.Do(func() {
		switch {
		case m.CacheSize < 0:
		case m.CacheSize == 0:
			m.cache = newResultCache(DefaultCacheSize, cacheBytes)
		default:
			m.cache = newResultCache(m.CacheSize, cacheBytes)
		}
	})
	return m.cache
}
