package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/controllers"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/testenv"
)

// The envtest suite runs what cmd/manager runs, in one controller-runtime
// manager against a real kube-apiserver and etcd: the reconciler, the
// JWKS server and the token API, as a user granted exactly the generated
// manager ClusterRole (config/rbac/role.yaml). Callers are real service
// accounts with tokens from TokenRequest, authorized by real RBAC that a
// tenant admin writes; tokens are verified with coreos/go-oidc and
// MicahParks/keyfunc against the JWKS the server really serves.
//
// The control plane starts on the first test that needs it (so unit
// tests and benchmarks run without one) and TestMain stops it.

// publicHost is the JWKS server's public base URL host; envClient dials
// the server's real listener for it, as DNS would.
const publicHost = "signet-jwks.test"

type envSuite struct {
	env        *testenv.Env
	clientset  kubernetes.Interface
	tenantUser *envtest.AuthenticatedUser // bound to tenantAdminRole in each test namespace
	jwks       *jwks.Server
	tokens     *Server
	tokenURL   string
	http       *http.Client // reaches http://signet-jwks.test and the token API
	logs       *logBuffer
	cancel     context.CancelFunc
	done       chan error

	orgs atomic.Int64
	// forbidden are strings the manager must never log: bearer tokens,
	// minted tokens, private keys. TestMain checks the logs at the end.
	mu        sync.Mutex
	forbidden []string
}

var (
	suiteOnce  sync.Once
	theSuite   *envSuite
	suiteError error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theSuite != nil {
		if leaks := theSuite.stop(); len(leaks) > 0 {
			fmt.Fprintln(os.Stderr, "token envtest: secrets in the manager's logs:\n  "+strings.Join(leaks, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

func suite(t *testing.T) *envSuite {
	t.Helper()
	if testing.Short() {
		t.Skip(testenv.SkipMessage)
	}
	// Otherwise no skip: a missing control plane is a failure, as in every package.
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or with KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	suiteOnce.Do(func() { theSuite, suiteError = startSuite() })
	if suiteError != nil {
		t.Fatalf("envtest: %v", suiteError)
	}
	return theSuite
}

const (
	// systemNamespace is signet's own, where the controller records claims.
	systemNamespace = "signet-system"
	managerUser     = "signet-token-test-manager"
	tenantAdminUser = "tenant-admin"
	tenantAdminRole = "tenant-admin"
)

func startSuite() (*envSuite, error) {
	s := &envSuite{logs: &logBuffer{}}
	ctrl.SetLogger(s.logs.logger())
	env, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	s.env = env
	if s.clientset, err = kubernetes.NewForConfig(env.Config); err != nil {
		return nil, err
	}
	ctx := context.Background()
	// The manager runs as a user holding the generated manager role only.
	role, err := managerRole()
	if err != nil {
		return nil, err
	}
	mgrUser, err := env.AddUser(envtest.User{Name: managerUser}, nil)
	if err != nil {
		return nil, err
	}
	// A tenant admin: everything on TenantIdentities (token included),
	// service accounts and RBAC, in the namespaces it is bound in.
	admin := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: tenantAdminRole}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"identity.signet.dev"}, Resources: []string{"tenantidentities", "tenantidentities/token"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts", "serviceaccounts/token"}, Verbs: []string{"*"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"*"}},
	}}
	for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}, role, admin, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: managerUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: managerUser}},
	}} {
		if err := env.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	if s.tenantUser, err = env.AddUser(envtest.User{Name: tenantAdminUser}, nil); err != nil {
		return nil, err
	}

	mgr, err := ctrl.NewManager(mgrUser.Config(), ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		// The cache as cmd/manager configures it: no Secret data cached.
		Cache: cacheopts.Options(cacheopts.Config{SystemNamespace: systemNamespace}),
	})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan error, 1)
	r := &controllers.TenantIdentityReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorder("signet"), PublicBaseURL: "http://" + publicHost, OrgBinding: true,
		SystemNamespace: systemNamespace, Generate: keys.Generate,
	}
	if err := r.SetupWithManager(runCtx, mgr); err != nil {
		return nil, err
	}
	if s.jwks, err = jwks.Add(mgr, jwks.Options{BindAddress: "127.0.0.1:0", PublicBaseURL: "http://" + publicHost, MaxCacheAge: time.Second,
		SystemNamespace: systemNamespace, OrgBinding: true}); err != nil {
		return nil, err
	}
	if s.tokens, err = Add(mgr, s.jwks, Options{BindAddress: "127.0.0.1:0"}); err != nil {
		return nil, err
	}
	s.tokenURL = "http://" + s.tokens.Addr().String()
	jwksAddr := s.jwks.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == publicHost+":80" {
				addr = jwksAddr
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	go func() { s.done <- mgr.Start(runCtx) }()
	return s, nil
}

// managerRole is config/rbac/role.yaml, as controller-gen generated it.
func managerRole() (*rbacv1.ClusterRole, error) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(b, []byte("---\n")), &role); err != nil {
		return nil, err
	}
	return &role, nil
}

// stop ends the manager and the control plane and returns what the
// manager logged that it must not have.
func (s *envSuite) stop() []string {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "token envtest manager:", err)
		}
	case <-time.After(30 * time.Second):
	}
	_ = s.env.Stop()
	logs := s.logs.String()
	var leaks []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.forbidden {
		if strings.Contains(logs, f) {
			leaks = append(leaks, fmt.Sprintf("%.24s...", f))
		}
	}
	// The scan means something only if the token API logged at all.
	if !strings.Contains(logs, `"token issued"`) {
		leaks = append(leaks, "(no \"token issued\" line: the logs were not captured)")
	}
	return leaks
}

// forbidKeys adds every private key signet stored in ns: the base64 body
// of key.pem, line by line.
func (s *envSuite) forbidKeys(ns string) {
	var list corev1.SecretList
	if err := s.env.Client.List(context.Background(), &list, client.InNamespace(ns), client.HasLabels{v1alpha1.LabelTenantIdentity}); err != nil {
		s.forbid("cannot list Secrets of " + ns + ": " + err.Error())
		return
	}
	for _, sec := range list.Items {
		for _, line := range strings.Split(string(sec.Data[dataKeyPEM]), "\n") {
			if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
				s.forbid(line)
			}
		}
	}
}

func (s *envSuite) forbid(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden = append(s.forbidden, secrets...)
}

// tenant is one TenantIdentity in a namespace of its own, bound to an org
// of its own, published.
type tenant struct {
	ns, name, org, site string
	ti                  *v1alpha1.TenantIdentity
}

func (tn *tenant) path() string { return v1alpha1.BasePath(tn.org, tn.site) + "/token" }

// newTenant creates a bound namespace, binds the tenant admin in it, and
// creates a TenantIdentity there with spec, waiting until it is served.
func (s *envSuite) newTenant(t *testing.T, name string, spec v1alpha1.TenantIdentitySpec) *tenant {
	t.Helper()
	org := fmt.Sprintf("org%d", s.orgs.Add(1))
	tn := &tenant{ns: s.env.Namespace(t, map[string]string{v1alpha1.LabelOrg: org}), name: name, org: org}
	t.Cleanup(func() { s.forbidKeys(tn.ns) }) // before the namespace goes
	s.bindTenantAdmin(t, tn.ns)
	return s.addTenant(t, tn, spec)
}

// addTenant creates the TenantIdentity tn.name in tn.ns for tn.org.
func (s *envSuite) addTenant(t *testing.T, tn *tenant, spec v1alpha1.TenantIdentitySpec) *tenant {
	t.Helper()
	tn.site = fmt.Sprintf("00000000-0000-4000-8000-%012d", s.orgs.Add(1))
	spec.Org, spec.SiteID = tn.org, tn.site
	tn.ti = &v1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: tn.name}, Spec: spec}
	if err := s.env.Client.Create(context.Background(), tn.ti); err != nil {
		t.Fatal(err)
	}
	s.waitServed(t, tn)
	return tn
}

// waitServed waits until the server publishes tn's Active key.
func (s *envSuite) waitServed(t *testing.T, tn *tenant) jwks.Publication {
	t.Helper()
	var pub jwks.Publication
	eventually(t, "TenantIdentity "+tn.ns+"/"+tn.name+" Ready and served", func() bool {
		if err := s.env.Client.Get(context.Background(), client.ObjectKeyFromObject(tn.ti), tn.ti); err != nil {
			return false
		}
		var ok bool
		pub, ok = s.jwks.Published(tn.org, tn.site)
		return ok && meta.IsStatusConditionTrue(tn.ti.Status.Conditions, v1alpha1.ConditionReady) &&
			pub.ActiveKID() == tn.ti.Status.ActiveKeyID
	})
	return pub
}

func (s *envSuite) bindTenantAdmin(t *testing.T, ns string) {
	t.Helper()
	s.create(t, s.env.Client, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tenantAdminUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tenantAdminRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: tenantAdminUser}},
	})
}

// asTenantAdmin is a client acting as the tenant admin.
func (s *envSuite) asTenantAdmin(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(s.tenantUser.Config(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *envSuite) create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// serviceAccount creates ns/name (as the tenant admin).
func (s *envSuite) serviceAccount(t *testing.T, ns, name string) {
	t.Helper()
	s.create(t, s.asTenantAdmin(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
}

// grant is the RBAC a tenant admin writes: create on tenantidentities/token
// for the named TenantIdentities, bound to ns/sa (a service account of
// saNS), in namespace ns.
func (s *envSuite) grant(t *testing.T, ns, saNS, sa string, resourceNames ...string) {
	t.Helper()
	c := s.asTenantAdmin(t)
	name := fmt.Sprintf("token-%s-%s", saNS, sa)
	s.create(t, c, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"identity.signet.dev"}, Resources: []string{"tenantidentities/token"},
			Verbs: []string{"create"}, ResourceNames: resourceNames,
		}},
	})
	s.create(t, c, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNS, Name: sa}},
	})
}

// saToken asks the API server (TokenRequest, as the kubelet does for a
// projected volume) for a token of ns/sa with the given audiences.
func (s *envSuite) saToken(t *testing.T, ns, sa string, audiences ...string) string {
	t.Helper()
	tr, err := s.clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.forbid(tr.Status.Token)
	return tr.Status.Token
}

// answer is one response of the token API.
type answer struct {
	code    int
	body    []byte
	token   string
	keyID   string
	expires time.Time
	message string
}

// post calls the token API over its real listener.
func (s *envSuite) post(t *testing.T, path, bearer, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.tokenURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	a := answer{code: resp.StatusCode}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if a.code == http.StatusOK {
		var r response
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatalf("200 body %s: %v", a.body, err)
		}
		a.token, a.keyID = r.Token, r.KeyID
		if a.expires, err = time.Parse(time.RFC3339, r.ExpiresAt); err != nil {
			t.Fatal(err)
		}
		s.forbid(r.Token)
	} else {
		a.message = decodeError(t, bytes.NewReader(a.body))
	}
	return a
}

// verifiers check tokens of one issuer for one audience with go-oidc
// (OIDC discovery from the issuer) and keyfunc (the served jwks.json).
type verifiers struct {
	oidc     *oidc.IDTokenVerifier
	kf       keyfunc.Keyfunc
	issuer   string
	audience string
	ctx      context.Context
}

func (s *envSuite) verifiers(t *testing.T, issuer, audience string) *verifiers {
	t.Helper()
	ctx, cancel := context.WithCancel(oidc.ClientContext(context.Background(), s.http))
	t.Cleanup(cancel)
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery of %s: %v", issuer, err)
	}
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&disc); err != nil {
		t.Fatal(err)
	}
	store, err := jwkset.NewStorageFromHTTP(disc.JWKSURI, jwkset.HTTPClientStorageOptions{
		Client: s.http, Ctx: ctx, HTTPTimeout: 5 * time.Second, RefreshInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	return &verifiers{oidc: provider.Verifier(&oidc.Config{ClientID: audience}), kf: kf, issuer: issuer, audience: audience, ctx: ctx}
}

// verify checks raw with both libraries and returns its claims.
func (v *verifiers) verify(t *testing.T, raw string) jwt.MapClaims {
	t.Helper()
	if _, err := v.oidc.Verify(v.ctx, raw); err != nil {
		t.Fatalf("go-oidc: %v", err)
	}
	var c jwt.MapClaims
	var lastErr error
	// keyfunc refreshes its JWKS every second; a key published a moment ago may need one.
	eventually(t, "keyfunc verifies the token", func() bool {
		c = jwt.MapClaims{}
		_, lastErr = jwt.ParseWithClaims(raw, c, v.kf.Keyfunc, jwt.WithIssuer(v.issuer), jwt.WithAudience(v.audience),
			jwt.WithExpirationRequired(), jwt.WithIssuedAt())
		return lastErr == nil
	})
	return c
}

// eventually polls cond every 50 ms for up to a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var tokensSpec = v1alpha1.TenantIdentitySpec{
	Keys: v1alpha1.KeyPolicy{TokenTTL: "10m", Overlap: "1h", PrePublish: "2s", RotationPeriod: "1h"},
	Tokens: &v1alpha1.TokenPolicy{
		AllowedAudiences: []string{"api.example", "db.example"},
		DefaultAudience:  "api.example",
	},
}

// Allowed: a service account granted create on tenantidentities/token for
// one TenantIdentity gets a token that real verifiers accept against the
// served JWKS, with the claims docs/design.md lists.
func TestEnvAllowed(t *testing.T) {
	t.Parallel()
	s := suite(t)
	tn := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, tn.ns, "builder")
	s.grant(t, tn.ns, tn.ns, "builder", tn.name)
	bearer := s.saToken(t, tn.ns, "builder", "signet")

	before := time.Now().Truncate(time.Second)
	a := s.post(t, tn.path(), bearer, `{"audience":["db.example"],"expirationSeconds":300}`)
	if a.code != http.StatusOK {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if a.keyID != tn.ti.Status.ActiveKeyID {
		t.Errorf("keyID %s, Active %s", a.keyID, tn.ti.Status.ActiveKeyID)
	}
	c := s.verifiers(t, tn.ti.Status.Issuer, "db.example").verify(t, a.token)
	if c["sub"] != "system:serviceaccount:"+tn.ns+":builder" || c["iss"] != tn.ti.Status.Issuer {
		t.Errorf("claims %v", c)
	}
	exp, _ := c.GetExpirationTime()
	iat, _ := c.GetIssuedAt()
	if exp.Sub(iat.Time) != 300*time.Second || iat.Before(before) || !exp.Equal(a.expires) {
		t.Errorf("iat %v exp %v expiresAt %v", iat, exp, a.expires)
	}
	hdr := header(t, a.token)
	if hdr.KeyID != tn.ti.Status.ActiveKeyID || hdr.Algorithm != "ES256" || hdr.ExtraHeaders[jose.HeaderType] != "JWT" {
		t.Errorf("header %+v", hdr)
	}
	// The default audience, and the default lifetime (tokenTTL).
	d := s.post(t, tn.path(), bearer, "")
	dc := s.verifiers(t, tn.ti.Status.Issuer, "api.example").verify(t, d.token)
	dexp, _ := dc.GetExpirationTime()
	diat, _ := dc.GetIssuedAt()
	if d.code != http.StatusOK || dexp.Sub(diat.Time) != 10*time.Minute {
		t.Errorf("default request: %d, lifetime %v", d.code, dexp.Sub(diat.Time))
	}
}

// The RBAC a tenant admin writes names TenantIdentities; a grant of
// another name, of the same name in another namespace, or none at all,
// gets 403. And the grant of another namespace's TenantIdentity works
// only there.
func TestEnvRBAC(t *testing.T) {
	t.Parallel()
	s := suite(t)
	a := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, a.ns, "other-name")
	s.grant(t, a.ns, a.ns, "other-name", "dc2") // another TenantIdentity's name
	s.serviceAccount(t, a.ns, "no-rbac")

	// Namespace b: a TenantIdentity of the same name, and a service
	// account granted it in b.
	b := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, b.ns, "builder")
	s.grant(t, b.ns, b.ns, "builder", "dc1")
	// A Role in b naming a's TenantIdentity, bound to a service account of a.
	s.serviceAccount(t, a.ns, "cross")
	s.grant(t, b.ns, a.ns, "cross", "dc1")

	cases := []struct {
		name       string
		ns, sa     string
		target     *tenant
		want       int
		wantDenied bool
	}{
		{"another TenantIdentity's name", a.ns, "other-name", a, http.StatusForbidden, true},
		{"no RBAC", a.ns, "no-rbac", a, http.StatusForbidden, true},
		{"granted in another namespace", b.ns, "builder", a, http.StatusForbidden, true},
		{"granted a TenantIdentity of the same name in another namespace", a.ns, "cross", a, http.StatusForbidden, true},
		{"the same grant, for its own namespace's TenantIdentity", b.ns, "builder", b, http.StatusOK, false},
		{"a Role in b binding a's service account serves b", a.ns, "cross", b, http.StatusOK, false},
	}
	for _, tc := range cases {
		ans := s.post(t, tc.target.path(), s.saToken(t, tc.ns, tc.sa, "signet"), "")
		if ans.code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, ans.code, ans.body, tc.want)
		}
		if tc.wantDenied && ans.message != errForbidden.message {
			t.Errorf("%s: message %q", tc.name, ans.message)
		}
	}
}

// Bad bearer tokens: expired (signed by the API server's own key, so that
// only its exp is wrong), of another audience, of an unknown issuer, or of
// a deleted service account: 401.
func TestEnvBadCallerTokens(t *testing.T) {
	t.Parallel()
	s := suite(t)
	tn := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, tn.ns, "builder")
	s.grant(t, tn.ns, tn.ns, "builder", tn.name)
	real := s.saToken(t, tn.ns, "builder", "signet")

	// Control: the same forging path with a future exp is accepted, so
	// the expired one below is refused for its exp alone.
	now := time.Now()
	if a := s.post(t, tn.path(), s.resign(t, real, now.Add(-time.Minute), now.Add(10*time.Minute)), ""); a.code != http.StatusOK {
		t.Fatalf("a re-signed, unexpired service account token: %d %s", a.code, a.body)
	}
	expired := s.resign(t, real, now.Add(-11*time.Minute), now.Add(-time.Minute))
	if a := s.post(t, tn.path(), expired, ""); a.code != http.StatusUnauthorized || a.message != errUnauthenticated.message {
		t.Errorf("expired token: %d %s", a.code, a.body)
	}

	for name, tok := range map[string]string{
		"the API server's audience": s.saToken(t, tn.ns, "builder"),
		"another audience":          s.saToken(t, tn.ns, "builder", "vault"),
	} {
		if a := s.post(t, tn.path(), tok, ""); a.code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, a.code, a.body)
		}
	}
	// A token for several audiences including signet is one for signet.
	if a := s.post(t, tn.path(), s.saToken(t, tn.ns, "builder", "vault", "signet"), ""); a.code != http.StatusOK {
		t.Errorf("audiences [vault signet]: %d %s", a.code, a.body)
	}

	// Signed by a key the API server does not know.
	stranger := testKey(t, headerAlg(t, real), 0)
	if a := s.post(t, tn.path(), resignWith(t, real, stranger.PrivatePEM, now.Add(-time.Minute), now.Add(10*time.Minute)), ""); a.code != http.StatusUnauthorized {
		t.Errorf("token of an unknown key: %d", a.code)
	}

	// A deleted service account's token.
	s.serviceAccount(t, tn.ns, "gone")
	s.grant(t, tn.ns, tn.ns, "gone", tn.name)
	gone := s.saToken(t, tn.ns, "gone", "signet")
	if err := s.env.Client.Delete(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "gone"}}); err != nil {
		t.Fatal(err)
	}
	if a := s.post(t, tn.path(), gone, ""); a.code != http.StatusUnauthorized {
		t.Errorf("token of a deleted service account: %d %s", a.code, a.body)
	}
}

// resign copies a real service account token's header and claims with
// new iat/nbf/exp, signed with the API server's service account key (the
// envtest control plane's sa-signer.key).
func (s *envSuite) resign(t *testing.T, real string, iat, exp time.Time) string {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(s.env.ControlPlane.APIServer.CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatal(err)
	}
	return resignWith(t, real, key, iat, exp)
}

func resignWith(t *testing.T, real string, keyPEM []byte, iat, exp time.Time) string {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("no PEM key")
	}
	var priv any
	var err error
	if priv, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		if priv, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	parts := strings.Split(real, ".")
	var hdr map[string]any
	var claims map[string]any
	for i, v := range []any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	claims["iat"], claims["nbf"], claims["exp"] = iat.Unix(), iat.Unix(), exp.Unix()
	payload, _ := json.Marshal(claims)
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", hdr["kid"])
	// The API server's key type says the algorithm (envtest's is EC P-256).
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(hdr["alg"].(string)), Key: priv.(crypto.Signer)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// headerAlg is the alg of a JWS.
func headerAlg(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Alg
}

// The tenant's policy: audiences among allowedAudiences, lifetime at most
// tokenTTL, and a TenantIdentity without spec.tokens or an org/site that is
// not published is 404.
func TestEnvPolicy(t *testing.T) {
	t.Parallel()
	s := suite(t)
	tn := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, tn.ns, "builder")
	s.grant(t, tn.ns, tn.ns, "builder", tn.name, "plain", "unbound")
	bearer := s.saToken(t, tn.ns, "builder", "signet")

	for _, tc := range []struct {
		name string
		body string
		want int
		msg  string
	}{
		{"audience not allowed", `{"audience":["evil.example"]}`, http.StatusBadRequest, errAudienceNotAllowed.message},
		{"TTL above tokenTTL", `{"expirationSeconds":601}`, http.StatusBadRequest, errTooLong(600).message},
		{"TTL of tokenTTL", `{"expirationSeconds":600}`, http.StatusOK, ""},
		{"unknown field", `{"subject":"root"}`, http.StatusBadRequest, errUnknownField.message},
	} {
		if a := s.post(t, tn.path(), bearer, tc.body); a.code != tc.want || a.message != tc.msg {
			t.Errorf("%s: %d %s", tc.name, a.code, a.body)
		}
	}

	// A TenantIdentity without spec.tokens, published, in the same namespace.
	plain := s.addTenant(t, &tenant{ns: tn.ns, name: "plain", org: tn.org}, v1alpha1.TenantIdentitySpec{})
	if a := s.post(t, plain.path(), bearer, ""); a.code != http.StatusNotFound || a.message != errNoTokens.message {
		t.Errorf("no spec.tokens: %d %s", a.code, a.body)
	}
	// spec.tokens added: served at once (from the cache).
	patch := client.MergeFrom(plain.ti.DeepCopy())
	plain.ti.Spec.Tokens = tokensSpec.Tokens.DeepCopy()
	if err := s.env.Client.Patch(context.Background(), plain.ti, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tokens once spec.tokens is set", func() bool { return s.post(t, plain.path(), bearer, "").code == http.StatusOK })

	// A TenantIdentity whose org the namespace is not bound to: not
	// published, 404 though the caller holds the grant.
	unbound := &v1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "unbound"}, Spec: *tokensSpec.DeepCopy()}
	unbound.Spec.Org, unbound.Spec.SiteID = "not-"+tn.org, "00000000-0000-4000-8000-ffffffffffff"
	s.create(t, s.env.Client, unbound)
	eventually(t, "OrgNotBound", func() bool {
		_ = s.env.Client.Get(context.Background(), client.ObjectKeyFromObject(unbound), unbound)
		c := meta.FindStatusCondition(unbound.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonOrgNotBound
	})
	if a := s.post(t, v1alpha1.BasePath(unbound.Spec.Org, unbound.Spec.SiteID)+"/token", bearer, ""); a.code != http.StatusNotFound || a.message != errNotServed.message {
		t.Errorf("unbound org: %d %s", a.code, a.body)
	}
}

// Across a rotation (rotationTrigger) and a revocation of the Active key,
// every token is signed by the key the documents list first at that
// moment, verifies against the served JWKS, and after the switch the
// replaced key never signs again; revoked, it leaves memory.
func TestEnvRotationAndRevocation(t *testing.T) {
	t.Parallel()
	s := suite(t)
	tn := s.newTenant(t, "dc1", tokensSpec)
	s.serviceAccount(t, tn.ns, "builder")
	s.grant(t, tn.ns, tn.ns, "builder", tn.name)
	bearer := s.saToken(t, tn.ns, "builder", "signet")
	v := s.verifiers(t, tn.ti.Status.Issuer, "api.example")
	key := tenantKey{tn.org, tn.site}

	mint := func() answer {
		t.Helper()
		a := s.post(t, tn.path(), bearer, "")
		if a.code != http.StatusOK {
			t.Fatalf("%d %s", a.code, a.body)
		}
		pub, _ := s.jwks.Published(tn.org, tn.site)
		if pub.ActiveKID() != a.keyID && !containsKID(pub.KIDs, a.keyID) {
			t.Fatalf("token of %s, not among the served kids %v", a.keyID, pub.KIDs)
		}
		v.verify(t, a.token)
		return a
	}
	first := mint().keyID

	patch := client.MergeFrom(tn.ti.DeepCopy())
	tn.ti.Spec.RotationTrigger = "now"
	if err := s.env.Client.Patch(context.Background(), tn.ti, patch); err != nil {
		t.Fatal(err)
	}
	// The successor is published and activates after prePublish (2s);
	// until then tokens keep coming from the first key.
	var second string
	deadline := time.Now().Add(time.Minute)
	for second == "" {
		if time.Now().After(deadline) {
			t.Fatal("no token of a successor within a minute")
		}
		// Every 200 ms, a workload's pace within the per-caller limit.
		time.Sleep(200 * time.Millisecond)
		if a := mint(); a.keyID != first {
			second = a.keyID
		}
	}
	if pub, _ := s.jwks.Published(tn.org, tn.site); pub.ActiveKID() != second {
		t.Fatalf("minted with %s, Active is %s", second, pub.ActiveKID())
	}
	for range 3 {
		if kid := mint().keyID; kid != second {
			t.Fatalf("after the switch a token of %s", kid)
		}
	}
	if kid := heldKID(s.tokens.handler.keys, key); kid != second {
		t.Errorf("held key %q, want %s", kid, second)
	}

	// Revoke the Active key: a successor signs at once; the revoked key
	// is never used again and leaves memory.
	patch = client.MergeFrom(tn.ti.DeepCopy())
	tn.ti.Spec.RevokedKeyIDs = []string{second}
	if err := s.env.Client.Patch(context.Background(), tn.ti, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked key unpublished", func() bool {
		pub, ok := s.jwks.Published(tn.org, tn.site)
		return ok && !containsKID(pub.KIDs, second)
	})
	eventually(t, "the revoked key dropped from memory", func() bool { return heldKID(s.tokens.handler.keys, key) != second })
	for range 3 {
		if kid := mint().keyID; kid == second || kid == first {
			t.Fatalf("a token of %s after its revocation", kid)
		}
	}
}

// heldKID is the kid of the key held for t, "" when none.
func heldKID(ks *keySource, t tenantKey) string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k := ks.held[t]; k != nil {
		return k.kid
	}
	return ""
}

func containsKID(kids []string, kid string) bool {
	for _, k := range kids {
		if k == kid {
			return true
		}
	}
	return false
}

// header is a JWS's protected header.
func header(t *testing.T, raw string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Protected
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// The samples: a user applying config/samples gets a TenantIdentity with
// spec.tokens and the RBAC of one workload, which then gets a token; the
// namespace's default service account does not.
func TestEnvSamples(t *testing.T) {
	s := suite(t)
	kubeconfig := s.env.Kubeconfig(t)
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	run := func(args ...string) {
		t.Helper()
		out, err := execCommand(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	run("apply", "-f", filepath.Join(testenv.RepoRoot(), "config", "samples"))
	t.Cleanup(func() {
		_, _ = execCommand(kubectl, "--kubeconfig", kubeconfig, "delete", "namespace", "tenant-acme", "--wait=false")
	})
	tn := &tenant{ns: "tenant-acme", name: "acme-dc1", org: "acme", site: "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f",
		ti: &v1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "acme-dc1"}}}
	s.waitServed(t, tn)
	a := s.post(t, tn.path(), s.saToken(t, "tenant-acme", "acme-workload", "signet"), "")
	if a.code != http.StatusOK {
		t.Fatalf("the sample workload: %d %s", a.code, a.body)
	}
	c := s.verifiers(t, tn.ti.Status.Issuer, "api.acme.example").verify(t, a.token)
	if c["sub"] != "spiffe://acme.example/ns/tenant-acme/sa/acme-workload" {
		t.Errorf("sub %v", c["sub"])
	}
	s.create(t, s.env.Client, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "default"}})
	if a := s.post(t, tn.path(), s.saToken(t, "tenant-acme", "default", "signet"), ""); a.code != http.StatusForbidden {
		t.Errorf("the default service account: %d", a.code)
	}
}
