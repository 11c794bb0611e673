//go:build !linux

package gateway

import "context"

// Run returns ErrNotSupported: the gateway needs Linux.
func Run(context.Context, Config, func(Started)) error { return ErrNotSupported }

// Cleanup returns ErrNotSupported: the gateway needs Linux.
func Cleanup() (Leftover, error) { return Leftover{}, ErrNotSupported }

// PrintPlan returns ErrNotSupported: the gateway needs Linux.
func PrintPlan(Plan) (string, error) { return "", ErrNotSupported }
