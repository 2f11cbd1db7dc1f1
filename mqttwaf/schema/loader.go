package schema

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema/internal/jsonschema"
)

// maxSchemaFile bounds what one schema file may cost to load.
const maxSchemaFile = 4 << 20

// ErrRemoteRef is wrapped by the compile error of a schema that refers to
// an http(s) URL not given in Options.Resources: schemas are compiled at
// start-up from local files only, so a policy never depends on the network
// nor lets a schema host change what the firewall accepts.
var ErrRemoteRef = errors.New("remote schemas are not fetched: save the document as a local file next to the schema and point $ref at it")

// localLoader serves file: URLs from the local file system and refuses
// every other scheme. The JSON Schema meta-schemas are embedded in the
// library and never reach a loader.
type localLoader struct{}

func (localLoader) Load(u string) (any, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch pu.Scheme {
	case "file":
	case "http", "https":
		return nil, fmt.Errorf("%w (%s)", ErrRemoteRef, u)
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q in $ref: only local files are loaded", pu.Scheme)
	}
	p, err := jsonschema.FileLoader{}.ToFile(u)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSchemaFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxSchemaFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxSchemaFile)
	}
	doc, err := decodeSchemaDoc(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return doc, nil
}

// decodeSchemaDoc decodes a schema document with the package's strict
// reader: duplicate keys in a schema are as ambiguous as in a payload.
func decodeSchemaDoc(b []byte) (any, error) {
	var d decoder
	d.reset(b, maxMaxDepth, true)
	doc, verr := d.document()
	if verr != nil {
		// Schema authors read line and column, not byte offsets.
		line, col := 1, 1
		for _, c := range b[:min(d.pos, len(b))] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return nil, fmt.Errorf("line %d, column %d: %s", line, col, verr.Message)
	}
	return doc, nil
}
