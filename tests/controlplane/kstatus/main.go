// kstatus reads Kubernetes objects as JSON (a stream of objects, or v1 Lists) on stdin
// and prints, for each, the status that sigs.k8s.io/cli-utils' kstatus computes, one
// JSON object a line: {"kind", "namespace", "name", "status", "message"}. The tests
// use it to check what GitOps tools built on kstatus (Flux's wait, kpt, cli-utils)
// make of the operator's real statuses.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	decoder := json.NewDecoder(os.Stdin)
	encoder := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err == io.EOF {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading JSON:", err)
			os.Exit(2)
		}
		// As the API machinery reads objects: whole numbers are int64, not float64.
		var object map[string]interface{}
		if err := k8sjson.Unmarshal(raw, &object); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading JSON:", err)
			os.Exit(2)
		}
		items := []interface{}{object}
		if list, ok := object["items"].([]interface{}); ok && object["kind"] == "List" {
			items = list
		}
		for _, item := range items {
			content, ok := item.(map[string]interface{})
			if !ok {
				fmt.Fprintln(os.Stderr, "kstatus: an item is not an object")
				os.Exit(2)
			}
			u := &unstructured.Unstructured{Object: content}
			result, err := status.Compute(u)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus:", u.GetKind(), u.GetName(), err)
				os.Exit(1)
			}
			out := verdict{u.GetKind(), u.GetNamespace(), u.GetName(), string(result.Status), result.Message}
			if err := encoder.Encode(out); err != nil {
				fmt.Fprintln(os.Stderr, "kstatus: writing:", err)
				os.Exit(2)
			}
		}
	}
}
