package crus

import "github.com/crus-go/crus/batch"

// ErrPermanentForTest is a permanent error for Settle tests.
var ErrPermanentForTest = batch.NewPermanent("permanent for test")
