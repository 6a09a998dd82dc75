module github.com/crus-go/crus/examples/pbs

go 1.26.0

require github.com/crus-go/crus v0.0.0-00010101000000-000000000000

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/crus-go/crus => ../..
