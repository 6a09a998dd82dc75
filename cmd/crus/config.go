package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/filestore"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

// Config is the configuration of `crus serve` (and of the client commands
// with --store): one YAML file, overridden by environment variables,
// overridden by flags. Every setting has all three (see settings), but
// the static token (token.value, CRUS_TOKEN), which has no flag.
type Config struct {
	Listen string `yaml:"listen"`
	CAFile string `yaml:"ca_file"`
	Tenant string `yaml:"tenant"`
	HSM    struct {
		URL string `yaml:"url"`
	} `yaml:"hsm"`
	BOS struct {
		URL        string `yaml:"url"`
		Version    string `yaml:"version"`     // v2 (default) or v1
		V1Sessions string `yaml:"v1_sessions"` // file recording BOS v1 session ids
	} `yaml:"bos"`
	Token struct {
		Source           string `yaml:"source"` // none, static, file, client_credentials
		Value            string `yaml:"value"`  // static (prefer the environment)
		File             string `yaml:"file"`
		URL              string `yaml:"url"` // token endpoint
		ClientID         string `yaml:"client_id"`
		ClientSecretFile string `yaml:"client_secret_file"`
	} `yaml:"token"`
	Slurm struct {
		Adapter   string `yaml:"adapter"` // scontrol (default) or slurmrestd
		Scontrol  string `yaml:"scontrol"`
		Squeue    string `yaml:"squeue"`
		SlurmConf string `yaml:"slurm_conf"`
		RestURL   string `yaml:"rest_url"`
		RestUser  string `yaml:"rest_user"`
		// PredictJobEnds answers JobEnds with a wlm.Predictor (see
		// predict.go) instead of the jobs' time limits.
		PredictJobEnds bool `yaml:"predict_job_ends"`
	} `yaml:"slurm"`
	Store struct {
		Dir           string `yaml:"dir"`
		EtcdEndpoints string `yaml:"etcd_endpoints"` // comma-separated
		EtcdPrefix    string `yaml:"etcd_prefix"`
	} `yaml:"store"`
	Auth struct {
		Mode        string `yaml:"mode"` // gateway (default) or jwt
		JWKSURL     string `yaml:"jwks_url"`
		Issuer      string `yaml:"issuer"`
		Audience    string `yaml:"audience"`
		PublicReads bool   `yaml:"public_reads"`
	} `yaml:"auth"`
	Executor struct {
		PollInterval   time.Duration `yaml:"poll_interval"`
		CallTimeout    time.Duration `yaml:"call_timeout"`
		NodeNameFormat string        `yaml:"node_name_format"`
	} `yaml:"executor"`
}

// setting ties one field of Config to its YAML key, environment variable
// and flag.
type setting struct {
	key, env, flag, help string
	def                  string
}

// defaultHSMURL is HSM's root on an HPE Cray EX system's API gateway.
const defaultHSMURL = "https://api-gw-service-nmn.local/apis/smd/hsm/v2"

var settings = []setting{
	{"listen", "CRUS_LISTEN", "listen", "address to serve on", "127.0.0.1:8080"},
	{"ca_file", "CRUS_CA_FILE", "ca-file", "PEM file of the CA of the HSM, BOS and Keycloak certificates", ""},
	{"tenant", "CRUS_TENANT", "tenant", "Cray-Tenant-Name to send", ""},
	{"hsm.url", "CRUS_HSM_URL", "hsm-url", "HSM v2 API root", defaultHSMURL},
	{"bos.url", "CRUS_BOS_URL", "bos-url", "BOS API root (without the version)", "https://api-gw-service-nmn.local/apis/bos"},
	{"bos.version", "CRUS_BOS_VERSION", "bos-version", "BOS API version: v2 or v1", "v2"},
	{"bos.v1_sessions", "CRUS_BOS_V1_SESSIONS", "bos-v1-sessions", "file recording the BOS v1 session ids (default: in the store directory)", ""},
	{"token.source", "CRUS_TOKEN_SOURCE", "token-source", "bearer token for HSM and BOS: none, static, file or client_credentials", "none"},
	{"token.value", "CRUS_TOKEN", "", "the static token", ""},
	{"token.file", "CRUS_TOKEN_FILE", "token-file", "file holding the token (source file)", ""},
	{"token.url", "CRUS_TOKEN_URL", "token-url", "Keycloak token endpoint (source client_credentials)", "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/token"},
	{"token.client_id", "CRUS_CLIENT_ID", "client-id", "OAuth client id", "admin-client"},
	{"token.client_secret_file", "CRUS_CLIENT_SECRET_FILE", "client-secret-file", "file holding the OAuth client secret", ""},
	{"slurm.adapter", "CRUS_SLURM_ADAPTER", "slurm-adapter", "scontrol or slurmrestd", "scontrol"},
	{"slurm.scontrol", "CRUS_SCONTROL", "scontrol", "scontrol program", "scontrol"},
	{"slurm.squeue", "CRUS_SQUEUE", "squeue", "squeue program", "squeue"},
	{"slurm.slurm_conf", "SLURM_CONF", "slurm-conf", "slurm.conf of the cluster", ""},
	{"slurm.rest_url", "CRUS_SLURMRESTD_URL", "slurmrestd-url", "slurmrestd base URL (adapter slurmrestd)", ""},
	{"slurm.rest_user", "CRUS_SLURMRESTD_USER", "slurmrestd-user", "user for slurmrestd tokens (scontrol token)", "root"},
	{"slurm.predict_job_ends", "CRUS_PREDICT_JOB_ENDS", "predict-job-ends", "expect jobs to end as their users' recent jobs did (Tsafrir et al.), not at their time limits: for order job_end and strategy scheduled where limits say little", "false"},
	{"store.dir", "CRUS_STORE_DIR", "store-dir", "directory of the session records", "/var/lib/crus"},
	{"store.etcd_endpoints", "CRUS_ETCD_ENDPOINTS", "etcd-endpoints", "comma-separated etcd endpoints (instead of a directory; for several replicas)", ""},
	{"store.etcd_prefix", "CRUS_ETCD_PREFIX", "etcd-prefix", "key prefix in etcd", "/crus/"},
	{"auth.mode", "CRUS_AUTH_MODE", "auth", "gateway (trust the API gateway) or jwt (verify bearer tokens)", "gateway"},
	{"auth.jwks_url", "CRUS_JWKS_URL", "jwks-url", "JWKS URL of the token issuer (auth jwt)", ""},
	{"auth.issuer", "CRUS_JWT_ISSUER", "jwt-issuer", "required token issuer (auth jwt)", ""},
	{"auth.audience", "CRUS_JWT_AUDIENCE", "jwt-audience", "required token audience (auth jwt)", ""},
	{"auth.public_reads", "CRUS_PUBLIC_READS", "public-reads", "let GET requests (the page) through without a token", "false"},
	{"executor.poll_interval", "CRUS_POLL_INTERVAL", "poll-interval", "how often the world is observed while waiting", "30s"},
	{"executor.call_timeout", "CRUS_CALL_TIMEOUT", "call-timeout", "how long one attempt of a backend or store call may take before it is cancelled and retried", crus.DefaultCallTimeout.String()},
	{"executor.node_name_format", "CRUS_NODE_NAME_FORMAT", "node-name-format", "workload-manager name of a NID", crus.DefaultNIDFormat},
}

// field returns the field of c named by a dotted YAML key.
func (c *Config) field(key string) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(key, ".") {
		t := v.Type()
		found := false
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic("config: no field " + key)
		}
	}
	return v
}

func setField(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int64: // time.Duration
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration", s)
		}
		v.SetInt(int64(d))
	default:
		return fmt.Errorf("cannot set a %s", v.Kind())
	}
	return nil
}

// serviceSettings are the settings of the service itself, its listener,
// its authentication and its executor's pace: of no use to a command that
// only reads the backends (crus plan).
var serviceSettings = map[string]bool{
	"listen": true, "auth.mode": true, "auth.jwks_url": true, "auth.issuer": true, "auth.audience": true,
	"auth.public_reads": true, "executor.poll_interval": true,
}

// readerSetting reports whether a command that only reads the cluster
// (crus plan: HSM and the workload manager, see connectReaders) uses the
// setting: not the service's own, not BOS's, not the store's.
func readerSetting(key string) bool {
	return !serviceSettings[key] && !strings.HasPrefix(key, "bos.") && !strings.HasPrefix(key, "store.")
}

// configFlags registers a flag per setting on fs, and --config; loadConfig
// reads the ones that were set.
func configFlags(fs *flag.FlagSet) *string {
	settingFlags(fs, nil)
	return fs.String("config", os.Getenv("CRUS_CONFIG"), "configuration file (YAML; env CRUS_CONFIG)")
}

// settingFlags registers a flag per setting on fs: every one with a flag
// if use is nil, else those use reports.
func settingFlags(fs *flag.FlagSet, use func(key string) bool) {
	for _, s := range settings {
		if s.flag != "" && (use == nil || use(s.key)) {
			fs.String(s.flag, "", fmt.Sprintf("%s (env %s, config %s; default %q)", s.help, s.env, s.key, s.def))
		}
	}
}

// loadConfig builds the configuration from defaults, the file, the
// environment and the flags set on fs, in that order of precedence (the
// last wins). It returns every problem at once.
func loadConfig(path string, fs *flag.FlagSet, env func(string) string) (*Config, []error) {
	c := &Config{}
	var problems []error
	for _, s := range settings {
		if err := setField(c.field(s.key), s.def); err != nil {
			panic(err)
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, []error{fmt.Errorf("config file: %w", err)}
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			problems = append(problems, fmt.Errorf("config file %s: %w", path, err))
		}
	}
	for _, s := range settings {
		if v := env(s.env); v != "" {
			if err := setField(c.field(s.key), v); err != nil {
				problems = append(problems, fmt.Errorf("environment %s: %w", s.env, err))
			}
		}
	}
	if fs != nil {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, s := range settings {
			if s.flag != "" && set[s.flag] {
				if err := setField(c.field(s.key), fs.Lookup(s.flag).Value.String()); err != nil {
					problems = append(problems, fmt.Errorf("flag --%s: %w", s.flag, err))
				}
			}
		}
	}
	return c, append(problems, c.validate()...)
}

// validate reports every setting that cannot work.
func (c *Config) validate() []error {
	var p []error
	bad := func(format string, args ...any) { p = append(p, fmt.Errorf(format, args...)) }
	checkURL := func(name, u string, required bool) {
		if u == "" {
			if required {
				bad("%s is required", name)
			}
			return
		}
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			bad("%s %q is not an http(s) URL", name, u)
		}
	}
	checkFile := func(name, path string) {
		if path == "" {
			return
		}
		if _, err := os.Stat(path); err != nil {
			bad("%s: %v", name, err)
		}
	}
	checkURL("hsm.url", c.HSM.URL, true)
	checkURL("bos.url", c.BOS.URL, true)
	checkFile("ca_file", c.CAFile)
	if c.BOS.Version != "v1" && c.BOS.Version != "v2" {
		bad("bos.version %q is not v1 or v2", c.BOS.Version)
	}
	switch c.Token.Source {
	case "none":
	case "static":
		if c.Token.Value == "" {
			bad("token.source static needs the token (CRUS_TOKEN)")
		}
	case "file":
		if c.Token.File == "" {
			bad("token.source file needs token.file")
		}
		checkFile("token.file", c.Token.File)
	case "client_credentials":
		checkURL("token.url", c.Token.URL, true)
		if c.Token.ClientID == "" {
			bad("token.client_id is required for client_credentials")
		}
		if c.Token.ClientSecretFile == "" {
			bad("token.client_secret_file is required for client_credentials")
		}
		checkFile("token.client_secret_file", c.Token.ClientSecretFile)
	default:
		bad("token.source %q is not none, static, file or client_credentials", c.Token.Source)
	}
	switch c.Slurm.Adapter {
	case "scontrol":
	case "slurmrestd":
		checkURL("slurm.rest_url", c.Slurm.RestURL, true)
	default:
		bad("slurm.adapter %q is not scontrol or slurmrestd", c.Slurm.Adapter)
	}
	if c.Store.EtcdEndpoints == "" && c.Store.Dir == "" {
		bad("store.dir or store.etcd_endpoints is required")
	}
	switch c.Auth.Mode {
	case "gateway":
	case "jwt":
		checkURL("auth.jwks_url", c.Auth.JWKSURL, true)
	default:
		bad("auth.mode %q is not gateway or jwt", c.Auth.Mode)
	}
	if c.Executor.PollInterval <= 0 {
		bad("executor.poll_interval must be positive")
	}
	if c.Executor.CallTimeout < crus.MinCallTimeout {
		bad("executor.call_timeout must be at least %s, got %s", crus.MinCallTimeout, c.Executor.CallTimeout)
	}
	if !strings.Contains(c.Executor.NodeNameFormat, "%") {
		bad("executor.node_name_format %q has no verb for the NID (such as %%06d)", c.Executor.NodeNameFormat)
	}
	return p
}

// backends are what a configuration connects to.
type backends struct {
	tokens  auth.TokenSource
	groups  *hsm.Client
	boot    bos.Orchestrator
	manager wlm.Manager
	store   crus.Store
	etcd    *etcdstore.Store
	auth    api.Authenticator
	closers []func() error
}

func (b *backends) Close() error {
	var errs []error
	for _, c := range slices.Backward(b.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// connect builds the clients of a configuration. Nothing is contacted yet
// except etcd (its client dials) and the store directory (opened and
// locked). It returns every problem at once.
func (c *Config) connect(log *slog.Logger) (*backends, []error) {
	b, p := c.connectReaders(log)
	var err error
	bcfg := bos.Config{BaseURL: c.BOS.URL, CAFile: c.CAFile, Tokens: b.tokens, Tenant: c.Tenant, Logger: log}
	if c.BOS.Version == "v1" {
		bcfg.Tenant = ""
		path := c.BOS.V1Sessions
		if path == "" && c.Store.Dir != "" {
			path = c.Store.Dir + "/bos-v1-sessions.json"
		}
		b.boot, err = bos.NewV1(bos.V1Config{Config: bcfg, Sessions: &bos.FileV1Store{Path: path}})
	} else {
		b.boot, err = bos.New(bcfg)
	}
	if err != nil {
		p = append(p, fmt.Errorf("bos: %w", err))
	}
	if c.Store.EtcdEndpoints != "" {
		client, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.Store.EtcdEndpoints, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			p = append(p, fmt.Errorf("etcd: %w", err))
		} else {
			b.closers = append(b.closers, client.Close)
			if b.etcd, err = etcdstore.New(client, etcdstore.Config{Prefix: c.Store.EtcdPrefix, Logger: log}); err != nil {
				p = append(p, fmt.Errorf("etcd store: %w", err))
			} else {
				b.store = b.etcd
			}
		}
	} else {
		st, err := filestore.Open(c.Store.Dir, filestore.Options{Create: true})
		if err != nil {
			p = append(p, fmt.Errorf("store: %w", err))
		} else {
			b.closers = append(b.closers, st.Close)
			b.store = st
		}
	}
	switch c.Auth.Mode {
	case "jwt":
		client, err := auth.NewHTTPClient(c.CAFile)
		if c.CAFile == "" {
			client, err = nil, nil
		}
		if err != nil {
			p = append(p, fmt.Errorf("auth: %w", err))
		}
		b.auth = &api.JWT{JWKSURL: c.Auth.JWKSURL, Issuer: c.Auth.Issuer, Audience: c.Auth.Audience, HTTPClient: client}
	default:
		b.auth = api.Gateway{}
	}
	return b, p
}

// connectReaders builds only the clients that read the cluster: HSM and
// the workload manager, with their tokens. It opens no store (so it takes
// no store directory's lock, nor creates one) and builds no BOS client:
// what `crus plan` needs.
func (c *Config) connectReaders(log *slog.Logger) (*backends, []error) {
	b := &backends{}
	var p []error
	switch c.Token.Source {
	case "static":
		b.tokens = auth.StaticToken(c.Token.Value)
	case "file":
		b.tokens = &auth.FileToken{Path: c.Token.File}
	case "client_credentials":
		b.tokens = &auth.ClientCredentials{TokenURL: c.Token.URL, ClientID: c.Token.ClientID, ClientSecretFile: c.Token.ClientSecretFile, CAFile: c.CAFile}
	}
	var err error
	if b.groups, err = hsm.New(hsm.Config{BaseURL: c.HSM.URL, CAFile: c.CAFile, Tokens: b.tokens, Tenant: c.Tenant, Logger: log}); err != nil {
		p = append(p, fmt.Errorf("hsm: %w", err))
	}
	cli, err := slurm.NewCLI(slurm.Config{Scontrol: c.Slurm.Scontrol, Squeue: c.Slurm.Squeue, SlurmConf: c.Slurm.SlurmConf, Logger: log})
	if err != nil {
		p = append(p, fmt.Errorf("slurm: %w", err))
	}
	switch {
	case c.Slurm.Adapter == "slurmrestd" && cli != nil:
		rest, err := slurm.NewREST(slurm.RESTConfig{
			URL: c.Slurm.RestURL, User: c.Slurm.RestUser, Token: cli.TokenSource(c.Slurm.RestUser, time.Hour),
			CAFile: c.CAFile, Fallback: cli, Logger: log,
		})
		if err != nil {
			p = append(p, fmt.Errorf("slurmrestd: %w", err))
		} else {
			b.manager = rest
		}
	case cli != nil:
		b.manager = cli
	}
	if c.Slurm.PredictJobEnds && b.manager != nil {
		b.manager = predicting(b.manager)
	}
	return b, p
}

// check contacts each backend once and reports what answered wrongly.
func (c *Config) check(ctx context.Context, b *backends, out io.Writer) []error {
	var p []error
	report := func(name string, err error, ok string) {
		if err != nil {
			p = append(p, fmt.Errorf("%s: %w", name, err))
			fmt.Fprintf(out, "FAIL  %-10s %v\n", name, err)
			return
		}
		fmt.Fprintf(out, "ok    %-10s %s\n", name, ok)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if b.tokens != nil {
		_, err := b.tokens.Token(ctx)
		report("token", err, "got a token ("+c.Token.Source+")")
	}
	// A label no one uses: "not found" proves the server answered and
	// took the credentials.
	const probe = "crus-config-check-probe"
	if b.groups != nil {
		_, err := b.groups.Members(ctx, probe)
		if errors.Is(err, hsm.ErrGroupNotFound) {
			err = nil
		}
		report("hsm", err, c.HSM.URL+" answered")
	}
	if b.boot != nil {
		err := b.boot.CheckTemplate(ctx, probe)
		if errors.Is(err, bos.ErrTemplateNotFound) {
			err = nil
		}
		report("bos", err, c.BOS.URL+" ("+c.BOS.Version+") answered")
	}
	if b.manager != nil {
		_, err := b.manager.Nodes(ctx, []string{"crus-config-check-probe"})
		if errors.Is(err, wlm.ErrNodeNotFound) {
			err = nil
		}
		report("slurm", err, c.Slurm.Adapter+" answered")
	}
	if b.store != nil {
		list, err := b.store.List(ctx)
		report("store", err, fmt.Sprintf("%d sessions", len(list)))
	}
	if j, ok := b.auth.(*api.JWT); ok {
		report("jwks", j.Check(ctx), c.Auth.JWKSURL+" holds keys")
	}
	return p
}
