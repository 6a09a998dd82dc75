package filestore

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/crus-go/crus"
)

// legacySchema is the schema of the files of earlier versions: one JSON
// document per session, <id>.json, rewritten whole by every write. They
// are still read; the next write of such a session replaces the document
// with a journal.
const legacySchema = 1

// legacyDocument is the JSON form of a schema-1 session file.
type legacyDocument struct {
	Schema   int             `json:"schema"`
	Revision int64           `json:"revision"`
	Session  json.RawMessage `json:"session"`
}

// decodeLegacy checks and decodes the contents of a schema-1 file.
func decodeLegacy(path, id string, b []byte) (*crus.Session, int64, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: file %s: %s; the file is left as it is: repair or remove it",
			crus.ErrCorruptSession, path, fmt.Sprintf(format, args...))
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, 0, corrupt("empty")
	}
	var doc legacyDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, 0, corrupt("not a JSON document (torn or damaged): %v", err)
	}
	if doc.Schema != legacySchema {
		return nil, 0, fmt.Errorf("%w %d in file %s (this version reads schemas %d and %d); the file is left as it is",
			ErrUnknownSchema, doc.Schema, path, legacySchema, SchemaVersion)
	}
	if doc.Revision < 1 {
		return nil, 0, corrupt("revision %d", doc.Revision)
	}
	if len(doc.Session) == 0 || string(doc.Session) == "null" {
		return nil, 0, corrupt("no session record")
	}
	var s crus.Session
	if err := json.Unmarshal(doc.Session, &s); err != nil {
		return nil, 0, corrupt("bad session record: %v", err)
	}
	if s.UpgradeID != id {
		return nil, 0, corrupt("holds session %q", s.UpgradeID)
	}
	return &s, doc.Revision, nil
}
