package config

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/internal/secrets"
)

// LoadOptions changes how a revision is loaded.
type LoadOptions struct {
	// LocalRoot, when set, places every local host under
	// filepath.Join(LocalRoot, host name): demos and tests use it to keep
	// the local transport inside a sandbox folder.
	LocalRoot string
	// TemplateMaxBytes and TemplateTimeout bound the evaluation of one
	// template for one host (DefaultTemplateMaxBytes and
	// DefaultTemplateTimeout when zero).
	TemplateMaxBytes int
	TemplateTimeout  time.Duration
	// Identities decrypt the repository's SOPS and age files. Without
	// any, an encrypted file is an error, unless SkipDecrypt is set.
	Identities *secrets.Identities
	// SkipDecrypt loads a revision without decrypting (validate without
	// identities): encrypted files are not checked, their content is
	// empty, and Revision.Undecrypted says where they are used.
	SkipDecrypt bool
	// Inventory gives the hosts of environments that declare an inventory
	// (nil: they get none from it, and nothing runs).
	Inventory InventorySource
	// Untrusted loads a revision that is not merged (a pull request's
	// preview): there every template rendered on a host with decrypted
	// values is secret, since its author can transform a value past the
	// check for the decrypted values themselves.
	Untrusted bool
	// Preview, when set, loads only one preview environment of a pull
	// request's checkout (see PreviewLoad).
	Preview *PreviewLoad
	// Kinds is the table of resource kinds (targets.Kinds) and Checks the
	// table of check kinds (verify.Kinds): their specs and their own
	// validation, the same the drivers and the checks run. Both are
	// required; config has no table of its own.
	Kinds  Kinds
	Checks CheckKinds
}

// nameRe is what environment, host and role names may look like: they
// appear in URLs, metric labels and log fields.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// roleDef is a reusable list of resources.
type roleDef struct {
	name      string
	pos       Position
	resources []*rawResource
}

// envDecl is an environment file as declared, before expansion.
type envDecl struct {
	env       *Environment
	file      string
	roles     map[string]*roleDef
	hosts     []*hostDecl
	checks    []checkDecl
	nameNode  *yaml.Node
	driftNode *yaml.Node
}

// hostDecl is a host as declared: its own resources and where each of its
// roles is named.
type hostDecl struct {
	host      *Host
	resources []*rawResource
	roleNodes []*yaml.Node
	keys      map[string]*yaml.Node
}

// checkDecl is a verify step with its parsed template fields.
type checkDecl struct {
	check     Check
	templates []checkTemplate
}

// loader holds the state of one LoadRevision call.
type loader struct {
	dir   string
	root  string // dir with symlinks resolved
	opts  LoadOptions
	errs  errs
	roles map[string]*roleDef
	files map[string][]byte
	// brokenRoles holds the file stems of role files that could not be
	// read: hosts naming such a role get no second, misleading "unknown
	// role" error, since the file's own errors already say what is wrong.
	brokenRoles map[string]bool
	// undecrypted is where encrypted files were used without decrypting;
	// varsUnknown the hosts some of whose variables were therefore not
	// read, whose templates are not rendered.
	undecrypted []Position
	varsUnknown map[*Host]bool
}

// LoadRevision loads and validates every environment declared in dir:
// environments/*.yaml (or .yml) and the reusable roles of roles/*.yaml. It
// returns every error of the revision at once, as an ErrorList, so that
// nothing of a revision that does not validate completely is applied.
func LoadRevision(dir string, opts LoadOptions) (*Revision, error) {
	if len(opts.Kinds) == 0 || len(opts.Checks) == 0 {
		return nil, fmt.Errorf("load revision from %s: no table of resource or check kinds given", dir)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("load revision from %s: %w", dir, err)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("load revision from %s: not a directory", dir)
	}
	l := &loader{dir: dir, root: root, opts: opts, roles: map[string]*roleDef{}, files: map[string][]byte{}, brokenRoles: map[string]bool{}, varsUnknown: map[*Host]bool{}}
	for _, file := range l.yamlFiles("roles") {
		l.loadRoleFile(file)
	}
	envFiles := l.yamlFiles("environments")
	if len(envFiles) == 0 {
		l.errs.add(Position{File: "environments"}, "no environment files (*.yaml or *.yml) found")
	}
	var decls []*envDecl
	seen := map[string]Position{}
	for _, file := range envFiles {
		decl := l.loadEnvFile(file)
		if decl == nil {
			continue
		}
		if decl.env.Name != "" {
			if first, dup := seen[decl.env.Name]; dup {
				l.errs.add(decl.env.Pos, "environment %q is already declared at %s", decl.env.Name, first)
			} else {
				seen[decl.env.Name] = decl.env.Pos
			}
		}
		decls = append(decls, decl)
	}
	if opts.Preview != nil {
		decls = l.previewDecl(decls, opts.Preview)
	}
	rev := &Revision{}
	for _, decl := range decls {
		l.addInventoryHosts(decl)
		l.expand(decl)
		rev.Environments = append(rev.Environments, decl.env)
	}
	rev.Undecrypted = l.undecrypted
	l.errs.list = append(l.errs.list, PromotionErrors(rev.Environments)...)
	if err := l.errs.result(); err != nil {
		return nil, err
	}
	sort.Slice(rev.Environments, func(i, j int) bool { return rev.Environments[i].Name < rev.Environments[j].Name })
	return rev, nil
}

// yamlFiles lists the *.yaml and *.yml files of a folder of the
// repository, relative to it with forward slashes, sorted.
func (l *loader) yamlFiles(sub string) []string {
	entries, err := os.ReadDir(filepath.Join(l.dir, sub))
	if err != nil {
		if !os.IsNotExist(err) {
			l.errs.add(Position{File: sub}, "cannot list the folder: %s", strings.TrimPrefix(err.Error(), "open "+filepath.Join(l.dir, sub)+": "))
		}
		return nil
	}
	var out []string
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if (ext == ".yaml" || ext == ".yml") && !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, sub+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// readYAML reads and parses one declared file.
func (l *loader) readYAML(file string) *yaml.Node {
	top := &yaml.Node{Line: 0}
	d := newDecoder(file, &l.errs)
	data, ok := l.readRepoFile(d, top, "file", file)
	if !ok {
		return nil
	}
	// SOPS keeps a YAML file's keys in clear, so an encrypted declaration
	// would parse, and its ciphertexts be applied as values.
	if kind := secrets.KindOf(file, data); kind != secrets.Plain {
		l.errs.add(Position{File: file, Line: 1, Column: 1}, "the file is %s-encrypted: declarations are read in clear; keep secrets in vars_files or in the files that source, template and unit_source name", encName(kind))
		return nil
	}
	return parseYAML(file, data, &l.errs)
}

// loadRoleFile reads roles/NAME.yaml: `role: NAME` and `resources: [...]`.
func (l *loader) loadRoleFile(file string) {
	l.decodeRole(file, l.readYAML(file))
}

// decodeRole decodes the parsed root node of a role file.
func (l *loader) decodeRole(file string, root *yaml.Node) {
	if root == nil {
		l.markBroken(file)
		return
	}
	d := newDecoder(file, &l.errs)
	role := &roleDef{pos: d.pos(root)}
	var nameNode *yaml.Node
	var decl struct {
		Role string `yaml:"role"`
	}
	d.decodeStruct(root, reflect.ValueOf(&decl).Elem(), "a role file", map[string]handler{
		"role": func(k, v *yaml.Node) {
			nameNode = v
			d.decodeValue(v, reflect.ValueOf(&decl.Role).Elem(), "role")
		},
		"resources": func(k, v *yaml.Node) { role.resources = l.decodeResources(d, v, "resources") },
	})
	if root.Kind != yaml.MappingNode {
		l.markBroken(file)
		return
	}
	if nameNode == nil {
		l.markBroken(file)
		d.errorf(root, "missing role: a role file names its role with `role: NAME`")
		return
	}
	role.name = decl.Role
	role.pos = d.pos(nameNode)
	if !nameRe.MatchString(role.name) {
		d.errorf(nameNode, "role: %q is not a valid name (letters, digits, '.', '_' and '-')", role.name)
		return
	}
	if first, dup := l.roles[role.name]; dup {
		d.errorf(nameNode, "role %q is already declared at %s", role.name, first.pos)
		return
	}
	l.roles[role.name] = role
}

// markBroken records that the role file could not be loaded.
func (l *loader) markBroken(file string) {
	l.brokenRoles[strings.TrimSuffix(path.Base(file), path.Ext(file))] = true
}
