package lab_test

import "runtime"

// The --netns tests enter namespaces on locked threads; locking the main
// goroutine to the main thread during initialisation keeps that thread out
// of it (see pkg/netns).
func init() { runtime.LockOSThread() }
