package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// The write commands change the spec only, the way a user's kubectl
// patch would: the controller does the rest. Each write is a merge patch
// that carries the resourceVersion it was computed from, retried on a
// conflict, so a concurrent edit (another revoke) is never overwritten.

// mutate applies change to the named TenantIdentity. change returns
// false when there is nothing to write; its message is printed either way.
func mutate(ctx context.Context, o *options, stdout io.Writer,
	change func(ti *identityv1alpha1.TenantIdentity) (write bool, message string, err error)) error {
	c, err := connect(o)
	if err != nil {
		return err
	}
	var message string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ti, err := c.tenantIdentity(ctx, o.args[0])
		if err != nil {
			return err
		}
		before := ti.DeepCopy()
		write, msg, err := change(ti)
		if err != nil {
			return err
		}
		message = msg
		if !write {
			return nil
		}
		return c.Patch(ctx, ti, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "tenantidentity %s/%s: %s\n", c.namespace, o.args[0], message)
	return err
}

func runRotate(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	return mutate(ctx, o, stdout, func(ti *identityv1alpha1.TenantIdentity) (bool, string, error) {
		trigger := time.Now().UTC().Format(time.RFC3339Nano)
		if trigger == ti.Spec.RotationTrigger {
			trigger += "-again"
		}
		ti.Spec.RotationTrigger = trigger
		if ti.Spec.Suspend {
			fmt.Fprintln(stderr, "warning: the TenantIdentity is suspended: the rotation happens once it is resumed")
		}
		return true, fmt.Sprintf("rotation requested (rotationTrigger %q): a successor is published now and signs after prePublish (%s)",
			trigger, ti.Spec.Keys.PrePublish), nil
	})
}

// kidPattern is the CRD's pattern of revokedKeyIDs items.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func runRevoke(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	kid := o.args[1]
	if !kidPattern.MatchString(kid) {
		return fmt.Errorf("%q is not a kid: a kid is 1 to 128 of A-Z a-z 0-9 _ -", kid)
	}
	return mutate(ctx, o, stdout, func(ti *identityv1alpha1.TenantIdentity) (bool, string, error) {
		if slices.Contains(ti.Spec.RevokedKeyIDs, kid) {
			return false, fmt.Sprintf("kid %s is revoked already", kid), nil
		}
		key, known := findKey(ti, kid)
		switch {
		case !known && !o.force:
			return false, "", unknownKID(ti, kid)
		case !known:
			fmt.Fprintf(stderr, "warning: kid %s is not among the keys in the status; revoking it anyway (--force)\n", kid)
		case key.State == identityv1alpha1.KeyStateActive:
			fmt.Fprintln(stderr, "warning: this is the Active key: a successor signs at once, without pre-publication;"+
				" verifiers that have not fetched it yet reject its tokens until they refetch the keys")
		}
		ti.Spec.RevokedKeyIDs = append(ti.Spec.RevokedKeyIDs, kid)
		return true, fmt.Sprintf("kid %s revoked: it leaves the documents and its Secret is deleted at once", kid), nil
	})
}

func findKey(ti *identityv1alpha1.TenantIdentity, kid string) (identityv1alpha1.KeyStatus, bool) {
	for _, k := range ti.Status.Keys {
		if k.KID == kid {
			return k, true
		}
	}
	return identityv1alpha1.KeyStatus{}, false
}

// unknownKID says which kids the TenantIdentity has, and which one the
// user may have meant when kid is a prefix of one.
func unknownKID(ti *identityv1alpha1.TenantIdentity, kid string) error {
	var have, prefixed []string
	for _, k := range ti.Status.Keys {
		have = append(have, fmt.Sprintf("%s (%s)", printable(k.KID), printable(string(k.State))))
		if strings.HasPrefix(k.KID, kid) {
			prefixed = append(prefixed, printable(k.KID))
		}
	}
	msg := fmt.Sprintf("kid %s is not a key of %s/%s", kid, ti.Namespace, ti.Name)
	if len(have) == 0 {
		msg += ", which lists no keys"
	} else {
		msg += "; its keys: " + strings.Join(have, ", ")
	}
	if len(prefixed) == 1 {
		msg += "; did you mean " + prefixed[0] + "?"
	}
	return fmt.Errorf("%s (pass --force to revoke it anyway)", msg)
}

func runSuspend(ctx context.Context, o *options, stdout, _ io.Writer) error {
	return setSuspend(ctx, o, stdout, true)
}

func runResume(ctx context.Context, o *options, stdout, _ io.Writer) error {
	return setSuspend(ctx, o, stdout, false)
}

func setSuspend(ctx context.Context, o *options, stdout io.Writer, suspend bool) error {
	return mutate(ctx, o, stdout, func(ti *identityv1alpha1.TenantIdentity) (bool, string, error) {
		switch {
		case ti.Spec.Suspend == suspend && suspend:
			return false, "suspended already", nil
		case ti.Spec.Suspend == suspend:
			return false, "not suspended", nil
		case suspend:
			ti.Spec.Suspend = true
			return true, "suspended: no key is created, activated, removed or revoked until resume; the documents keep being served", nil
		default:
			ti.Spec.Suspend = false
			return true, "resumed: the controller catches up with the schedule from now", nil
		}
	})
}
