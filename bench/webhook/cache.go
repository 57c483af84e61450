package main

import (
	"fmt"
	"io"

	"github.com/rollguard/rollguard/pkg/webhook"
)

// setCache turns the mutating handler's result cache off when on is false.
func setCache(m *webhook.Mutator, on bool) {
	if !on {
		m.CacheSize = -1
	}
}

// writeCacheStats writes the cache's hits and misses.
func writeCacheStats(w io.Writer, m *webhook.Mutator) bool {
	hits, misses, _, _ := m.CacheStats()
	fmt.Fprintln(w, hits, misses)
	return true
}
