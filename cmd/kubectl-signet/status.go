package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// runStatus prints one TenantIdentity, or every one of the namespace (or
// of all namespaces with -A), one block each.
func runStatus(ctx context.Context, o *options, stdout, _ io.Writer) error {
	c, err := connect(o)
	if err != nil {
		return err
	}
	if len(o.args) == 1 {
		ti, err := c.tenantIdentity(ctx, o.args[0])
		if err != nil {
			return err
		}
		return printStatus(stdout, ti, time.Now())
	}
	var list identityv1alpha1.TenantIdentityList
	var opts []client.ListOption
	where := "any namespace"
	if !o.allNamespaces {
		opts = append(opts, client.InNamespace(c.namespace))
		where = fmt.Sprintf("namespace %q", c.namespace)
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		_, err := fmt.Fprintf(stdout, "No TenantIdentities in %s.\n", where)
		return err
	}
	for i := range list.Items {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := printStatus(stdout, &list.Items[i], time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// printStatus writes a header, the keys table and the conditions table.
func printStatus(w io.Writer, ti *identityv1alpha1.TenantIdentity, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	st := ti.Status
	fmt.Fprintf(tw, "TenantIdentity:\t%s/%s\n", ti.Namespace, ti.Name)
	fmt.Fprintf(tw, "Org / site:\t%s / %s\n", ti.Spec.Org, ti.Spec.SiteID)
	fmt.Fprintf(tw, "Issuer:\t%s\n", dash(printable(st.Issuer)))
	fmt.Fprintf(tw, "JWKS URI:\t%s\n", dash(printable(st.JWKSURI)))
	k := ti.Spec.Keys
	fmt.Fprintf(tw, "Policy:\t%s, rotationPeriod %s, prePublish %s, overlap %s, tokenTTL %s\n",
		printable(string(k.Algorithm)), printable(k.RotationPeriod), printable(k.PrePublish), printable(k.Overlap), printable(k.TokenTTL))
	fmt.Fprintf(tw, "Active key:\t%s\n", dash(printable(st.ActiveKeyID)))
	fmt.Fprintf(tw, "Next rotation:\t%s\n", timeAndDistance(st.NextRotationTime, now))
	fmt.Fprintf(tw, "Suspended:\t%t\n", ti.Spec.Suspend)
	if len(ti.Spec.RevokedKeyIDs) > 0 {
		fmt.Fprintf(tw, "Revoked:\t%s\n", printable(strings.Join(ti.Spec.RevokedKeyIDs, ", ")))
	}
	if st.ObservedGeneration != ti.Generation {
		fmt.Fprintf(tw, "Observed:\tgeneration %d of %d: the controller has not acted on the latest spec yet\n", st.ObservedGeneration, ti.Generation)
	}
	fmt.Fprintln(tw)
	if len(st.Keys) == 0 {
		fmt.Fprintln(tw, "No keys yet.")
	} else {
		fmt.Fprintln(tw, "KID\tSTATE\tPUBLISHED\tACTIVATES\tRETIRES\tREMOVES")
		for _, key := range st.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(key.KID), printable(string(key.State)),
				stamp(key.PublishedAt), stamp(key.ActivatesAt), stamp(key.RetiresAt), stamp(key.RemovesAt))
		}
	}
	fmt.Fprintln(tw)
	if len(st.Conditions) == 0 {
		fmt.Fprintln(tw, "No conditions yet.")
	} else {
		fmt.Fprintln(tw, "CONDITION\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(c.Type), printable(string(c.Status)), printable(c.Reason),
				stamp(&c.LastTransitionTime), printable(oneLine(c.Message)))
		}
	}
	return tw.Flush()
}

// stamp is an RFC 3339 time in UTC, or "-".
func stamp(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// timeAndDistance is stamp plus how far from now, for humans.
func timeAndDistance(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", stamp(t), duration.HumanDuration(d))
	}
	return fmt.Sprintf("%s (%s ago)", stamp(t), duration.HumanDuration(-d))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a message on its table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printable escapes what a terminal would interpret: a TenantIdentity's
// status is tenant-writable, and an admin running status -A must not get
// a tenant's escape sequences (or tabs that shift the columns).
func printable(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if needsEscape(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r == utf8.RuneError || !unicode.IsPrint(r)
}
