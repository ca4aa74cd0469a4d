package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/internal/jwks"
)

// fakeAccessReviews allows what allow says, recording every review.
type fakeAccessReviews struct {
	mu    sync.Mutex
	allow func(authzv1.SubjectAccessReviewSpec) bool
	err   error
	specs []authzv1.SubjectAccessReviewSpec
}

func (f *fakeAccessReviews) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, *sar.Spec.DeepCopy())
	if f.err != nil {
		return nil, f.err
	}
	out := sar.DeepCopy()
	out.Status.Allowed = f.allow != nil && f.allow(sar.Spec)
	return out, nil
}

func (f *fakeAccessReviews) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.specs)
}

func TestAuthorizeAsksForTokenSubresource(t *testing.T) {
	reviews := &fakeAccessReviews{allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	a := newAuthorizer(reviews)
	c := callerOf(saUser("tenant-acme", "builder"))
	owner := jwks.Owner{Namespace: "tenant-acme", Name: "acme-dc1", UID: "u1"}
	if ok, err := a.allowed(context.Background(), c, owner, time.Unix(0, 0)); !ok || err != nil {
		t.Fatalf("allowed %v, %v", ok, err)
	}
	spec := reviews.specs[0]
	want := authzv1.ResourceAttributes{Namespace: "tenant-acme", Verb: "create", Group: "identity.signet.dev",
		Resource: "tenantidentities", Subresource: "token", Name: "acme-dc1"}
	if spec.ResourceAttributes == nil || *spec.ResourceAttributes != want {
		t.Errorf("resource attributes %+v, want %+v", spec.ResourceAttributes, want)
	}
	if spec.User != c.User || spec.UID != c.UID || len(spec.Groups) != 3 || spec.Extra["authentication.kubernetes.io/pod-name"][0] != "pod-1" {
		t.Errorf("the review is not for the reviewed user: %+v", spec)
	}
}

func TestAuthorizeCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	granted := map[string]bool{}
	reviews := &fakeAccessReviews{allow: func(s authzv1.SubjectAccessReviewSpec) bool { return granted[s.ResourceAttributes.Name] }}
	a := newAuthorizer(reviews)
	c := callerOf(saUser("ns", "a"))
	dc1 := jwks.Owner{Namespace: "ns", Name: "dc1"}
	dc2 := jwks.Owner{Namespace: "ns", Name: "dc2"}
	expect := func(what string, owner jwks.Owner, at time.Time, want bool, wantCalls int) {
		t.Helper()
		ok, err := a.allowed(ctx, c, owner, at)
		if err != nil || ok != want {
			t.Errorf("%s: %v, %v; want %v", what, ok, err, want)
		}
		if n := reviews.count(); n != wantCalls {
			t.Errorf("%s: %d reviews so far, want %d", what, n, wantCalls)
		}
	}
	granted["dc1"] = true
	expect("granted", dc1, now, true, 1)
	expect("granted, cached", dc1, now.Add(allowedAge-time.Second), true, 1)
	expect("another object is another decision", dc2, now, false, 2)
	granted["dc1"] = false // the RoleBinding is deleted
	expect("revoked, after allowedAge", dc1, now.Add(allowedAge), false, 3)
	granted["dc2"] = true // a RoleBinding is created
	expect("denied, cached", dc2, now.Add(deniedAge-time.Second), false, 3)
	expect("denied, after deniedAge", dc2, now.Add(deniedAge), true, 4)

	// Another caller with the same name (another pod: other extra) is
	// another decision.
	other := callerOf(authnv1.UserInfo{Username: c.User, UID: c.UID, Groups: c.Groups})
	if ok, _ := a.allowed(ctx, other, dc2, now.Add(deniedAge)); !ok || reviews.count() != 5 {
		t.Errorf("a caller of other attributes reused a decision: %d reviews", reviews.count())
	}

	reviews.err = errors.New("timeout")
	if _, err := a.allowed(ctx, c, jwks.Owner{Namespace: "ns", Name: "dc3"}, now); err == nil {
		t.Error("a failed review is no error")
	}
	reviews.err = nil
	granted["dc3"] = true
	expect("failure not cached", jwks.Owner{Namespace: "ns", Name: "dc3"}, now, true, 7)
}

func TestAuthorizeDeniedWins(t *testing.T) {
	// An authorizer chain may answer allowed and denied (a webhook's explicit deny).
	a := newAuthorizer(denyingReviews{})
	if ok, err := a.allowed(context.Background(), callerOf(saUser("ns", "a")), jwks.Owner{Namespace: "ns", Name: "x"}, time.Unix(0, 0)); ok || err != nil {
		t.Errorf("allowed and denied: %v, %v", ok, err)
	}
}

type denyingReviews struct{}

func (denyingReviews) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	out := sar.DeepCopy()
	out.Status = authzv1.SubjectAccessReviewStatus{Allowed: true, Denied: true}
	return out, nil
}
