package web

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// The wizard's steps, in order, and the request fields each one fills.
var wizardSteps = []struct {
	Name, Label string
	Fields      []string
}{
	{"beneficiary", "Beneficiary", []string{"beneficiary_type", "beneficiary_id"}},
	{"connector", "Connector", []string{"connector_id"}},
	{"access", "Access", []string{"entitlements"}},
	{"details", "Details", []string{"justification", "priority", "duration"}},
	{"review", "Review and Submit", nil},
}

func stepIndex(name string) int {
	for i, s := range wizardSteps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

type wizardData struct {
	Draft    *requests.Draft
	Step     string
	StepNo   int
	Steps    []string
	Labels   []string
	Errors   map[string]string
	Types    []requests.Type
	Priority []requests.Priority
	// Beneficiary step.
	Q          string
	Identities []identities.Identity
	Workgroups []identities.Workgroup
	// Connector step.
	Connectors []configured.Record
	Connector  *configured.Record
	// Access step: what may be chosen, and what is shown but not offered.
	Entitlements []offer
	Selected     []identities.Entitlement
	Accounts     []accountLine
	// Review step.
	TimeBound bool
	Admin     bool
	// Refused says why the request policy refuses the request.
	Refused []string
	// Plan lists the approvals the request needs before it runs.
	Plan []requests.ApprovalStep
	// Preview is what Submit would run now.
	Preview *previewView
	// Reach is false when the requester may ask only for the people and
	// workgroups listed (themselves, reports, workgroups they own).
	Anyone bool
	// NoAccount names the people the request acts on who have no account
	// on the connector (a request other than Create account fails for
	// them); AddCreate offers to make it a Create account request.
	NoAccount []string
	AddCreate bool
	// Retype is set when the type of an existing draft is being changed.
	Retype bool
	// Drafts are the user's unfinished requests, offered to resume.
	Drafts []requests.Draft
}

// offer is an entitlement of the access step; Why, when set, says why it
// is not offered.
type offer struct {
	identities.Entitlement
	Why string
	Max string
	// Needs says whose approval a grant needs.
	Needs string
}

type accountLine struct {
	Name   string
	Status string
	// Missing is set when the portal knows no usable account (none, or
	// deleted) of the person on the connector.
	Missing bool
}

func (s *Server) wizardStart(c *fiber.Ctx) error {
	d := wizardData{Types: requests.Types}
	var err error
	if d.Drafts, err = s.Requests.ListDrafts(c.UserContext(), user(c).ID); err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "wizard", s.newPage(c, "new", "New Request", d))
}

// wizardRetype shows the type cards for a draft: another type keeps what
// still applies of the rest.
func (s *Server) wizardRetype(c *fiber.Ctx, d *requests.Draft, status int, errs map[string]string) error {
	wd := wizardData{Types: requests.Types, Draft: d, Retype: true, Errors: errs}
	return s.render(c, status, "wizard", s.newPage(c, "new", "New Request: "+d.Type.Label(), wd))
}

// wizardRetypeSave changes a draft's type and goes to the first step that
// needs something for the new type, or back to Review.
func (s *Server) wizardRetypeSave(c *fiber.Ctx, d *requests.Draft) error {
	if form(c, "action") == "back" {
		return redirect(c, "/requests/drafts/"+d.ID+"/review")
	}
	var ve *requests.ValidationError
	if err := d.ChangeType(requests.Type(form(c, "type"))); errors.As(err, &ve) {
		return s.wizardRetype(c, d, fiber.StatusUnprocessableEntity, map[string]string{"type": ve.Fields[0].Message})
	}
	if err := s.Requests.SaveDraft(c.UserContext(), d); err != nil {
		return err
	}
	errs, err := s.Requests.CheckFields(c.UserContext(), d.Request)
	if err != nil {
		return err
	}
	base := "/requests/drafts/" + d.ID + "/"
	for _, st := range wizardSteps {
		for k := range errs {
			f, _, _ := strings.Cut(k, "[")
			if slices.Contains(st.Fields, f) {
				return redirect(c, base+st.Name)
			}
		}
	}
	return redirect(c, base+"review")
}

func (s *Server) wizardCreate(c *fiber.Ctx) error {
	d, err := s.Requests.NewDraft(c.UserContext(), user(c).ID, requests.Type(form(c, "type")))
	var ve *requests.ValidationError
	if errors.As(err, &ve) {
		wd := wizardData{Types: requests.Types, Errors: map[string]string{"type": ve.Fields[0].Message}}
		return s.render(c, fiber.StatusUnprocessableEntity, "wizard", s.newPage(c, "new", "New Request", wd))
	}
	if err != nil {
		return err
	}
	return redirect(c, "/requests/drafts/"+d.ID+"/beneficiary")
}

// retypeStep is the address of the type cards of an existing draft.
const retypeStep = "type"

func (s *Server) loadDraft(c *fiber.Ctx) (*requests.Draft, int, error) {
	d, err := s.Requests.GetDraft(c.UserContext(), user(c).ID, param(c, "id"))
	if err != nil {
		return nil, 0, err
	}
	if param(c, "step") == retypeStep {
		return d, -1, nil
	}
	i := stepIndex(param(c, "step"))
	if i < 0 {
		return nil, 0, fiber.ErrNotFound
	}
	return d, i, nil
}

func (s *Server) wizardStep(c *fiber.Ctx) error {
	d, i, err := s.loadDraft(c)
	if err != nil {
		return err
	}
	if i < 0 {
		return s.wizardRetype(c, d, fiber.StatusOK, nil)
	}
	return s.showStep(c, fiber.StatusOK, d, i, nil)
}

// showStep renders step i of a draft with errors next to their fields.
func (s *Server) showStep(c *fiber.Ctx, status int, d *requests.Draft, i int, errs map[string]string) error {
	ctx := c.UserContext()
	wd := wizardData{Draft: d, Step: wizardSteps[i].Name, StepNo: i, Errors: friendly(errs), Admin: isAdmin(c),
		Priority:  []requests.Priority{requests.Low, requests.Normal, requests.High, requests.Critical},
		TimeBound: d.Type == requests.CreateAccount || d.Type == requests.AddEntitlements}
	for _, st := range wizardSteps {
		wd.Steps = append(wd.Steps, st.Name)
		wd.Labels = append(wd.Labels, st.Label)
	}
	if d.ConnectorID != "" {
		if rec, err := s.Connectors.Get(ctx, d.ConnectorID); err == nil {
			wd.Connector = rec
		}
	}
	switch wd.Step {
	case "beneficiary":
		wd.Q = query(c, "q")
		reach, err := s.Requests.Reach(ctx, requester(c))
		if err != nil {
			return err
		}
		wd.Anyone = reach == nil
		if d.BeneficiaryType == requests.BeneficiaryWorkgroup {
			wd.Workgroups, _, err = s.Identities.ListWorkgroups(ctx, identities.ListOpts{Query: wd.Q, Limit: 20, Reach: reach})
		} else {
			wd.Identities, _, err = s.Identities.ListIdentities(ctx, identities.ListOpts{Query: wd.Q, Limit: 20, Reach: reach})
		}
		if err != nil {
			return err
		}
	case "connector":
		list, err := s.Connectors.List(ctx)
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.Enabled && s.offers(ctx, &r, d.Type) {
				wd.Connectors = append(wd.Connectors, r)
			}
		}
	case "access", "review":
		for _, id := range d.Entitlements {
			if e, err := s.Identities.GetEntitlement(ctx, id); err == nil {
				wd.Selected = append(wd.Selected, *e)
			}
		}
		if wd.Step == "access" && d.ConnectorID != "" {
			wd.Q = query(c, "q")
			list, _, err := s.Identities.ListEntitlements(ctx, d.ConnectorID, identities.ListOpts{Query: wd.Q, Limit: 50})
			if err != nil {
				return err
			}
			who := requester(c)
			grants := d.Type != requests.RemoveEntitlements
			for _, e := range list {
				if slices.Contains(d.Entitlements, e.ID) {
					continue
				}
				o := offer{Entitlement: e}
				if grants {
					_, o.Why = requests.EntitlementRefusal(who, &e)
					o.Needs = requests.ApprovalNote(who, &e)
					if m := e.Max(); m > 0 {
						o.Max = requests.FormatDuration(m)
					}
				}
				wd.Entitlements = append(wd.Entitlements, o)
			}
		}
		wd.Accounts = s.accountLines(c, d)
	}
	if wd.Step == "review" && d.Type != requests.CreateAccount {
		for _, a := range wd.Accounts {
			if a.Missing {
				wd.NoAccount = append(wd.NoAccount, a.Name)
			}
		}
		wd.AddCreate = len(wd.NoAccount) > 0 && d.Type == requests.AddEntitlements
	}
	if wd.Step == "review" {
		// Shown before Submit is pressed, so nobody submits in vain.
		refusals, ok := c.Locals("refused").([]requests.Refusal)
		if !ok {
			var err error
			if refusals, err = s.Requests.Refusals(ctx, requester(c), d.Request); err != nil {
				return err
			}
		}
		for _, r := range refusals {
			wd.Refused = append(wd.Refused, r.Message)
		}
		if len(wd.Refused) == 0 {
			plan, err := s.Requests.ApprovalPlan(ctx, requester(c), d.Request)
			if err != nil {
				return err
			}
			wd.Plan = plan
			who := requester(c)
			p, err := s.Requests.Preview(ctx, d.Request, requests.PreviewOpts{By: &who})
			if wd.Preview, err = previewOf(p, err); err != nil {
				return err
			}
		}
	}
	title := "New Request: " + d.Type.Label()
	if IsHTMX(c) && c.Method() == fiber.MethodGet && c.Get("HX-Target") != "" {
		return s.fragment(c, "wizard", "results-"+wd.Step, wd)
	}
	return s.render(c, status, "wizard", s.newPage(c, "new", title, wd))
}

// accountLines says which accounts the beneficiary has on the connector,
// so a lock, unlock or delete shows what it will act on.
func (s *Server) accountLines(c *fiber.Ctx, d *requests.Draft) []accountLine {
	if d.ConnectorID == "" || d.BeneficiaryID == "" {
		return nil
	}
	ctx := c.UserContext()
	var people []identities.Identity
	if d.BeneficiaryType == requests.BeneficiaryWorkgroup {
		people, _ = s.Identities.Members(ctx, nil, d.BeneficiaryID)
	} else if p, err := s.Identities.GetIdentity(ctx, d.BeneficiaryID); err == nil {
		people = []identities.Identity{*p}
	}
	var out []accountLine
	for _, p := range people {
		line := accountLine{Name: p.DisplayName + " (" + p.Username + ")", Status: "no account known yet", Missing: true}
		if a, err := s.Identities.AccountOf(ctx, nil, d.ConnectorID, p.ID); err == nil {
			line.Name = p.DisplayName + " (" + a.Username + ")"
			line.Status, line.Missing = a.Status, a.Status == "deleted"
		}
		out = append(out, line)
	}
	return out
}

// wizardSave takes a step's form to the handler of the button that sent
// it: Back, Next or a search on any step (wizardMove), Submit
// (wizardSubmit) or Create Task (wizardCreateTask) on the review step. Each
// stores what the step's form holds first.
func (s *Server) wizardSave(c *fiber.Ctx) error {
	d, i, err := s.loadDraft(c)
	if errors.Is(err, requests.ErrNotFound) && form(c, "action") == "submit" {
		if id, done, err := s.submittedRun(c); done {
			if err != nil {
				return err
			}
			return redirect(c, "/requests/"+id)
		}
	}
	if err != nil {
		return err
	}
	if i < 0 {
		return s.wizardRetypeSave(c, d)
	}
	if wizardSteps[i].Name == "review" {
		switch form(c, "action") {
		case "submit":
			return s.wizardSubmit(c, d, i)
		case "task":
			return s.wizardCreateTask(c, d, i)
		}
	}
	return s.wizardMove(c, d, i)
}

// submittedRun finds the run a second click on Submit belongs to: it can
// come after the first one's run started and took the draft away. done
// says the click was answered (by the run id, or by err).
func (s *Server) submittedRun(c *fiber.Ctx) (id string, done bool, err error) {
	key := idempotencyKey(c)
	if key == nil {
		return "", false, nil
	}
	id, err = s.Requests.KeyedRun(c.UserContext(), key)
	return id, err != nil || id != "", err
}

// bindStep copies what step i's form holds into d and stores the draft;
// shown says the step was shown again with its field errors.
func (s *Server) bindStep(c *fiber.Ctx, d *requests.Draft, i int) (shown bool, err error) {
	ctx := c.UserContext()
	switch wizardSteps[i].Name {
	case "beneficiary":
		if t := form(c, "beneficiary_type"); t != "" && t != d.BeneficiaryType {
			d.BeneficiaryType, d.BeneficiaryID, d.BeneficiaryName = t, "", ""
		}
		if id := form(c, "beneficiary_id"); id != "" {
			d.BeneficiaryID = id
			if name, err := s.Requests.BeneficiaryName(ctx, d.BeneficiaryType, id); err == nil {
				d.BeneficiaryName = name
			}
		}
	case "connector":
		if id := form(c, "connector_id"); id != d.ConnectorID {
			d.ConnectorID, d.Entitlements = id, nil
		}
	case "access":
		d.Entitlements = formList(c, "entitlements")
	case "details":
		d.Justification = strings.TrimSpace(form(c, "justification"))
		d.Priority = requests.Priority(form(c, "priority"))
		d.Duration = strings.TrimSpace(form(c, "duration"))
	case "review":
		d.TaskName = strings.TrimSpace(form(c, "task_name"))
		d.Description = strings.TrimSpace(form(c, "description"))
	}
	if err := s.Requests.SaveDraft(ctx, d); err != nil {
		if errs := requests.FieldMap(err); errs != nil {
			return true, s.showStep(c, fiber.StatusUnprocessableEntity, d, i, errs)
		}
		return true, err
	}
	return false, nil
}

// wizardMove stores step i and moves Back, to a search's results, or Next
// once the step's fields are right. On the review step, where Next has no
// meaning, a button other than Submit or Create Task is refused.
func (s *Server) wizardMove(c *fiber.Ctx, d *requests.Draft, i int) error {
	if shown, err := s.bindStep(c, d, i); shown {
		return err
	}
	step := wizardSteps[i].Name
	base := "/requests/drafts/" + d.ID + "/"
	switch form(c, "action") {
	case "back":
		if i == 0 {
			return redirect(c, "/requests/new")
		}
		return redirect(c, base+wizardSteps[i-1].Name)
	case "search", "switch":
		return redirect(c, base+step+"?q="+url.QueryEscape(strings.TrimSpace(form(c, "q"))))
	}
	if step == "review" {
		if shown, err := s.checkReview(c, d, i); shown {
			return err
		}
		return s.showStep(c, fiber.StatusUnprocessableEntity, d, i, map[string]string{"action": "choose Submit or Create Task"})
	}
	ctx := c.UserContext()
	errs, err := s.Requests.CheckFields(ctx, d.Request, wizardSteps[i].Fields...)
	if err != nil {
		return err
	}
	if len(errs) == 0 {
		if errs, err = s.refusedFields(c, d, wizardSteps[i].Fields); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return s.showStep(c, fiber.StatusUnprocessableEntity, d, i, errs)
	}
	return redirect(c, base+wizardSteps[i+1].Name)
}

// checkReview shows the review step again with every step's problems;
// shown says there were some (or err).
func (s *Server) checkReview(c *fiber.Ctx, d *requests.Draft, i int) (shown bool, err error) {
	errs, err := s.Requests.CheckFields(c.UserContext(), d.Request)
	if err != nil {
		return true, err
	}
	if len(errs) > 0 {
		return true, s.showStep(c, fiber.StatusUnprocessableEntity, d, i, errs)
	}
	return false, nil
}

// wizardSubmit stores the review step and submits the request.
func (s *Server) wizardSubmit(c *fiber.Ctx, d *requests.Draft, i int) error {
	if shown, err := s.bindStep(c, d, i); shown {
		return err
	}
	if shown, err := s.checkReview(c, d, i); shown {
		return err
	}
	ctx := c.UserContext()
	who := requester(c)
	inst, err := s.Requests.Submit(ctx, d.Request, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: user(c).Username, Key: idempotencyKey(c), By: &who})
	if err != nil {
		return s.reviewError(c, d, i, err)
	}
	_ = s.Requests.DeleteDraft(ctx, d.UserID, d.ID)
	if inst.Status == requests.InstanceAwaitingApproval {
		s.flash(c, "Request submitted: it awaits approval. Its jobs are queued once it is approved; My approvals shows where it stands.")
	} else {
		s.flash(c, "Request submitted: its jobs are queued.")
	}
	return redirect(c, "/requests/"+inst.ID)
}

// wizardCreateTask stores the review step and saves the request as a task.
func (s *Server) wizardCreateTask(c *fiber.Ctx, d *requests.Draft, i int) error {
	if shown, err := s.bindStep(c, d, i); shown {
		return err
	}
	if shown, err := s.checkReview(c, d, i); shown {
		return err
	}
	ctx := c.UserContext()
	name := d.TaskName
	if name == "" {
		name = defaultTaskName(d)
	}
	req := d.Request
	who := requester(c)
	t, err := s.Tasks.Create(ctx, tasks.Input{Name: &name, Description: &d.Description, Request: &req, By: &who}, user(c).Username)
	if err != nil {
		return s.reviewError(c, d, i, err)
	}
	_ = s.Requests.DeleteDraft(ctx, d.UserID, d.ID)
	msg := "Task created. Trigger it here or from the tasks grid."
	if !isAdmin(c) {
		msg = "Task created. An admin triggers it or gives it a schedule; its runs show under Requests."
	}
	if a, err := s.approvalOf(c, t.ApprovalID); err != nil {
		return err
	} else if a != nil && a.Open() {
		msg = "Task created. Its request awaits approval before it can run; My approvals shows where it stands."
	}
	s.flash(c, msg)
	return redirect(c, "/tasks/"+t.ID)
}

// reviewError shows a validation error of Submit or Create Task on the
// review step; task fields are named task_name and description there.
func (s *Server) reviewError(c *fiber.Ctx, d *requests.Draft, i int, err error) error {
	var pe *requests.PolicyError
	if errors.As(err, &pe) {
		return s.showRefused(c, d, i, pe.Refusals)
	}
	var ve *requests.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	errs := map[string]string{}
	for _, f := range ve.Fields {
		switch {
		case f.Field == "name":
			errs["task_name"] = f.Message
		case strings.HasPrefix(f.Field, "request."):
			errs[strings.TrimPrefix(f.Field, "request.")] = f.Message
		default:
			errs[f.Field] = f.Message
		}
	}
	return s.showStep(c, fiber.StatusUnprocessableEntity, d, i, errs)
}

// refusedFields returns the request policy's refusals of the given fields
// of a draft, by field.
func (s *Server) refusedFields(c *fiber.Ctx, d *requests.Draft, fields []string) (map[string]string, error) {
	refusals, err := s.Requests.Refusals(c.UserContext(), requester(c), d.Request)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range refusals {
		f, _, _ := strings.Cut(r.Field, "[")
		if slices.Contains(fields, f) {
			out[r.Field] = r.Message
		}
	}
	return out, nil
}

// showRefused shows the review step with why the policy refuses the request.
func (s *Server) showRefused(c *fiber.Ctx, d *requests.Draft, i int, refusals []requests.Refusal) error {
	c.Locals("refused", refusals)
	return s.showStep(c, fiber.StatusForbidden, d, i, nil)
}

func defaultTaskName(d *requests.Draft) string {
	if d.BeneficiaryName == "" {
		return d.Type.Label()
	}
	return fmt.Sprintf("%s for %s", d.Type.Label(), d.BeneficiaryName)
}

func (s *Server) wizardDiscard(c *fiber.Ctx) error {
	if err := s.Requests.DeleteDraft(c.UserContext(), user(c).ID, param(c, "id")); err != nil {
		return err
	}
	s.flash(c, "Draft discarded.")
	return redirect(c, "/requests")
}

// fieldLabels name a request's fields as the wizard shows them.
var fieldLabels = map[string]string{
	"type": "Type", "beneficiary_type": "Beneficiary type", "beneficiary_id": "Beneficiary", "connector_id": "Connector",
	"entitlements": "Entitlements", "justification": "Justification", "priority": "Priority", "duration": "Duration",
	"task_name": "Task name", "description": "Description", "accounts": "Accounts",
}

// plainMessages turns the validator's terse words for an empty choice
// into what the person filling in the wizard should do.
var plainMessages = map[string]string{
	"beneficiary_id": "Choose a person or a workgroup",
	"connector_id":   "Choose a connector",
}

// friendly rewrites the problems of a step for people: "required" on a
// choice says what to choose.
func friendly(errs map[string]string) map[string]string {
	for k, v := range errs {
		if m, ok := plainMessages[k]; ok && v == "required" {
			errs[k] = m
		}
	}
	return errs
}

type problem struct{ Label, Message string }

// problemList lists errs by their field's label, in the wizard's order,
// leaving out the fields named in skip (shown next to their input), and
// each message once.
func problemList(errs map[string]string, skip ...string) []problem {
	order := []string{"type"}
	for _, st := range wizardSteps {
		order = append(order, st.Fields...)
	}
	order = append(order, "task_name", "description")
	rank := func(k string) int {
		base, _, _ := strings.Cut(k, "[")
		if i := slices.Index(order, base); i >= 0 {
			return i
		}
		return len(order)
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		base, _, _ := strings.Cut(k, "[")
		if !slices.Contains(skip, base) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var out []problem
	seen := map[string]bool{}
	for _, k := range keys {
		base, _, _ := strings.Cut(k, "[")
		label := fieldLabels[base]
		if label == "" {
			label = strings.ReplaceAll(base, "_", " ")
		}
		p := problem{Label: label, Message: errs[k]}
		if seen[p.Label+"\x00"+p.Message] {
			continue
		}
		seen[p.Label+"\x00"+p.Message] = true
		out = append(out, p)
	}
	return out
}

// offers reports whether the connector of r can do what a request of type t
// asks (any type when t is not chosen yet): the wizard offers only those.
func (s *Server) offers(ctx context.Context, r *configured.Record, t requests.Type) bool {
	if t == "" {
		return true
	}
	conn, err := s.Connectors.Open(ctx, r)
	if err != nil {
		return false
	}
	return requests.Offers(conn, t)
}
