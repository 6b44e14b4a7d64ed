package requests

import (
	"context"
	"fmt"
	"strings"

	"github.com/provisor/provisor/connectors"
)

// ImportFunc runs a data import of a connector for the connector job jobID
// and says what it did. The requests package does not import the importer
// (package imports): app wires it through Options, and a process without
// one says so on the job.
type ImportFunc func(ctx context.Context, connectorID string, mode connectors.ImportMode, jobID string) (connectors.Result, error)

// checkImport validates the fields of a data_import request: a mode, and no
// beneficiary but the connector (filled in when left out).
func (r *Request) checkImport(v *ValidationError) {
	r.ImportMode = strings.TrimSpace(r.ImportMode)
	switch connectors.ImportMode(r.ImportMode) {
	case connectors.ImportFull, connectors.ImportDelta:
	default:
		v.add("import_mode", "must be full or delta")
	}
	if r.BeneficiaryType == "" && r.BeneficiaryID == "" {
		r.BeneficiaryType, r.BeneficiaryID = BeneficiaryConnector, r.ConnectorID
		return
	}
	if r.BeneficiaryType != BeneficiaryConnector {
		v.add("beneficiary_type", "a data_import request has the connector as beneficiary: leave it out or give connector")
	}
	if r.BeneficiaryID != r.ConnectorID {
		v.add("beneficiary_id", "a data_import request has the connector as beneficiary: leave it out or give connector_id")
	}
}

// jobKind names a job as the connector does, by its entitlement when the
// connector tells them apart ("EntraID AssignRole"); an import adds its
// mode ("Import.Full", "Import.Delta").
func jobKind(conn connectors.Connector, op connectors.Operation, r *Request, e *entitlementRef) string {
	kind := conn.Kind(op)
	if k, ok := conn.(connectors.EntitlementKinder); ok && e != nil {
		kind = k.KindOf(op, connectors.Entitlement{ExternalID: e.ExternalID, Name: e.Name, Kind: e.Kind})
	}
	if op == connectors.OpImport && r.ImportMode != "" {
		kind += "." + strings.ToUpper(r.ImportMode[:1]) + r.ImportMode[1:]
	}
	return kind
}

// runImport runs the import a data_import job asks for.
func (s *Service) runImport(ctx context.Context, j *Job) (connectors.Result, error) {
	if s.opts.ImportFunc == nil {
		return connectors.Result{}, connectors.Permanent(fmt.Errorf("this process runs no data imports (no importer configured)"))
	}
	var inst Instance
	if err := s.db.Gorm.WithContext(ctx).Where("id = ?", j.InstanceID).Take(&inst).Error; err != nil {
		return connectors.Result{}, err
	}
	r, err := inst.RequestOf()
	if err != nil {
		return connectors.Result{}, connectors.Permanent(fmt.Errorf("the run's request cannot be read: %w", err))
	}
	return s.opts.ImportFunc(ctx, j.ConnectorID, connectors.ImportMode(r.ImportMode), j.ID)
}

// ImportSupported reports whether a connector takes data_import requests.
func (s *Service) ImportSupported(ctx context.Context, connectorID string) (bool, error) {
	_, conn, err := s.connectors.OpenByID(ctx, connectorID)
	if err != nil {
		return false, err
	}
	return connectors.Supports(conn, connectors.OpImport), nil
}
