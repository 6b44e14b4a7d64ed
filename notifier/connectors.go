package notifier

import (
	"bytes"
	"context"
	"fmt"
	htmltemplate "html/template"
	"strings"

	"gorm.io/gorm"

	"github.com/provisor/provisor/requests"
)

// RecipientAdmin is an admin told of a connector's quarantine.
const RecipientAdmin = "admin"

// connectorMailHTML is the HTML part of a connector state email.
var connectorMailHTML = htmltemplate.Must(htmltemplate.New("connector").Parse(`<!doctype html>
<html><body>
<h2>{{.Heading}}</h2>
<p>{{.Intro}}</p>
<table>{{range .Rows}}<tr><th align="left">{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
<p><a href="{{.Link}}">Open the connector in the portal</a></p>
<p><small>Sent by Provisor to its admins.</small></p>
</body></html>`))

// ConnectorStateTx is the requests.ConnectorStateFunc that mails the
// admins when a connector enters or leaves quarantine, in the transaction
// that changes it. The once key names the quarantine (by the time it
// began) and the change, so a retried transaction writes each message once.
// Pauses are an admin's own act and are not mailed.
func (s *Service) ConnectorStateTx(ctx context.Context, tx *gorm.DB, ch *requests.ConnectorStateChange) error {
	if s.dir == nil || (ch.To != requests.StateQuarantined && ch.From != requests.StateQuarantined) {
		return nil
	}
	admins, err := s.dir.AdminMailboxesTx(ctx, tx)
	if err != nil {
		return fmt.Errorf("notifier: admins: %w", err)
	}
	c, err := s.render.connectorState(ch)
	if err != nil {
		return err
	}
	event := "released"
	if ch.To == requests.StateQuarantined {
		event = "quarantined"
	}
	var rows []Notification
	for _, a := range admins {
		if a.Address == "" {
			s.log.Info("connector email skipped", "connector", ch.ConnectorName, "admin", a.Name, "reason", "no email address")
			continue
		}
		key := fmt.Sprintf("connector %s %s %d %s", ch.ConnectorID, event, ch.Since.UnixMilli(), a.Address)
		n := s.newMessage(recipient{Type: RecipientAdmin, Name: a.Name, Address: a.Address}, c, key)
		n.ConnectorID = &ch.ConnectorID
		rows = append(rows, n)
	}
	if len(rows) == 0 {
		return nil
	}
	_, err = s.EnqueueTx(ctx, tx, rows)
	return err
}

func (r *renderer) connectorState(ch *requests.ConnectorStateChange) (*Content, error) {
	d := struct {
		Heading, Intro, Link string
		Rows                 [][2]string
	}{Link: r.baseURL + "/connectors/" + ch.ConnectorID}
	d.Rows = [][2]string{{"Connector", ch.ConnectorName}, {"Reason", ch.Reason}, {"At", formatTime(ch.At)}}
	if ch.To == requests.StateQuarantined {
		d.Heading = "Connector " + ch.ConnectorName + " is quarantined"
		d.Intro = "Its jobs wait, spending no attempts, until a probe of the connection succeeds or an admin releases it."
		if ch.NextProbeAt != nil {
			d.Rows = append(d.Rows, [2]string{"Next probe", formatTime(*ch.NextProbeAt)})
		}
	} else {
		d.Heading = "Connector " + ch.ConnectorName + " is out of quarantine"
		d.Intro = "Its waiting jobs run again."
		d.Rows = append(d.Rows, [2]string{"By", ch.Actor}, [2]string{"Quarantined since", formatTime(ch.Since)})
	}
	c := &Content{Subject: oneLine("[Provisor] "+d.Heading, 250)}
	var t strings.Builder
	t.WriteString(d.Heading + ".\n" + d.Intro + "\n\n")
	for _, row := range d.Rows {
		fmt.Fprintf(&t, "  %-18s %s\n", row[0], cell(row[1]))
	}
	t.WriteString("\nOpen the connector in the portal:\n" + d.Link + "\n\n-- \nSent by Provisor to its admins.\n")
	c.Text = t.String()
	var b bytes.Buffer
	if err := connectorMailHTML.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render connector email: %w", err)
	}
	c.HTML = b.String()
	return c, nil
}
