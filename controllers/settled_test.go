package controllers

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// countingReader counts the reads that reach it: the reconciler's live
// (API server) reads.
type countingReader struct {
	client.Reader
	reads atomic.Int64
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.reads.Add(1)
	return c.Reader.List(ctx, list, opts...)
}

// A TenantIdentity whose objects are already right costs no write and no
// live read (the manager's cache serves every read; no private key is
// read): what a restart of the manager with thousands of settled tenants
// costs each of them. At every stage of a rotation, in between its
// changes.
func TestSettledReconcileWritesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	for _, st := range untilRetired {
		h.run(names, []step{st})
		h.at(st.at + time.Second) // within the step, before its next change
		f := &faults{mode: failOne, n: math.MaxInt}
		live := &countingReader{Reader: h.c}
		r := h.reconciler(f.client(h.c))
		r.APIReader = live
		res, err := r.Reconcile(h.ctx, reqFor(h.ns, h.name))
		if err != nil {
			t.Fatal(err)
		}
		if len(f.writes) != 0 || live.reads.Load() != 0 {
			t.Errorf("t0+%s: a settled reconcile made %d writes %q and %d live reads", st.at+time.Second, len(f.writes), f.writes, live.reads.Load())
		}
		if want := st.requeue - time.Second; res.RequeueAfter != want {
			t.Errorf("t0+%s: RequeueAfter %s, want %s", st.at+time.Second, res.RequeueAfter, want)
		}
		h.expectEvents("settled")
	}
}
