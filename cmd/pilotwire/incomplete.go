package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// incompleteNotes says, by session number, which sessions hold flows of
// an import that began and did not end (flow.Store.UnfinishedImports: an
// import killed half way, or one running now), so that a session cut short
// does not pass for a whole run. It costs a second Brief read of the store,
// made only when such an import exists; a capture file read directly has
// none.
func incompleteNotes(ctx context.Context, src flowSource, sessions []timeline.Session) (map[int]string, error) {
	ss, ok := src.(storeSource)
	if !ok || len(sessions) == 0 {
		return nil, nil
	}
	unfinished, err := ss.st.UnfinishedImports(ctx)
	if err != nil || len(unfinished) == 0 {
		return nil, err
	}
	byFile := map[string]flow.UnfinishedImport{}
	for _, u := range unfinished {
		byFile[u.SourceFile] = u
	}
	byClient := map[string][]int{}
	for i, s := range sessions {
		byClient[s.Client] = append(byClient[s.Client], i)
	}
	files := map[int][]string{} // session index → unfinished files it holds flows of
	err = src.Each(ctx, flow.Filter{Brief: true}, func(f *flow.Flow) error {
		if f.SourceFile == "" {
			return nil
		}
		if _, ok := byFile[f.SourceFile]; !ok {
			return nil
		}
		for _, i := range byClient[f.Client] {
			if sessions[i].Contains(f) && !slices.Contains(files[i], f.SourceFile) {
				files[i] = append(files[i], f.SourceFile)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read flows from %s: %w", src.Name(), err)
	}
	notes := map[int]string{}
	for i, fs := range files {
		var parts []string
		for _, f := range fs {
			u := byFile[f]
			what := fmt.Sprintf("import interrupted after %d flows", u.Flows)
			if len(fs) > 1 {
				what += " (" + f + ")"
			}
			parts = append(parts, what)
		}
		slices.Sort(parts)
		notes[sessions[i].Number] = "incomplete: " + strings.Join(parts, "; ")
	}
	return notes, nil
}
