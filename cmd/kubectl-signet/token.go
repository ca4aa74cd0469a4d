package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// bearerLifetime is how long the TokenRequest's token lives: long enough
// for one call, the API server's minimum.
const bearerLifetime = 600

// compactJWS is header.payload.signature in base64url.
var compactJWS = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// tokenRequest is the token API's request body (docs/design.md, "The token API").
type tokenRequest struct {
	Audience          []string `json:"audience,omitempty"`
	ExpirationSeconds int64    `json:"expirationSeconds,omitempty"`
}

// tokenResponse is its 200 answer.
type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt"`
	KeyID     string `json:"keyID"`
}

// runToken asks the token API for a token of the TenantIdentity's
// org/site and prints it (the whole answer with -o json). The bearer
// token it authenticates with is never printed.
func runToken(ctx context.Context, o *options, stdout, _ io.Writer) error {
	c, err := connect(o)
	if err != nil {
		return err
	}
	ti, err := c.tenantIdentity(ctx, o.args[0])
	if err != nil {
		return err
	}
	bearer, err := bearerToken(ctx, c, o)
	if err != nil {
		return err
	}
	hc, err := newHTTPClient(o.caFile)
	if err != nil {
		return err
	}
	resp, err := postToken(ctx, hc, tokenURL(o.server, ti), bearer, tokenRequest{
		Audience: o.audiences, ExpirationSeconds: int64(o.expiration.Seconds()),
	})
	if err != nil {
		return err
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	_, err = fmt.Fprintln(stdout, resp.Token)
	return err
}

func tokenURL(server string, ti *identityv1alpha1.TenantIdentity) string {
	return strings.TrimSuffix(server, "/") + identityv1alpha1.BasePath(ti.Spec.Org, ti.Spec.SiteID) + "/token"
}

// bearerToken reads --token-file, or asks the API server for a token of
// --service-account with the token API's review audience.
func bearerToken(ctx context.Context, c *cluster, o *options) (string, error) {
	if o.tokenFile != "" {
		data, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", o.tokenFile)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: o.serviceAccount}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{o.reviewAudience}, ExpirationSeconds: ptr.To[int64](bearerLifetime),
	}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("TokenRequest for serviceaccount %s/%s: %w", c.namespace, o.serviceAccount, err)
	}
	return tr.Status.Token, nil
}

// postToken calls the token API; a non-200 answer becomes an error with
// the status and the NICo message.
func postToken(ctx context.Context, hc *http.Client, url, bearer string, body tokenRequest) (*tokenResponse, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token API: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return nil, fmt.Errorf("token API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token API answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), nicoMessage(raw))
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil || tr.Token == "" {
		return nil, fmt.Errorf("token API answered 200 without a token (%s)", nicoMessage(raw))
	}
	// The token goes to a terminal or a pipe as it is: only a compact JWS.
	if !compactJWS.MatchString(tr.Token) {
		return nil, fmt.Errorf("token API answered 200 with a token that is not a compact JWS")
	}
	return &tr, nil
}
