//go:build !linux

package bench

import "syscall"

// childAttr: only Linux can tie a child's life to the bench's; elsewhere
// the bench stops its children when it ends normally.
func childAttr() *syscall.SysProcAttr { return nil }
