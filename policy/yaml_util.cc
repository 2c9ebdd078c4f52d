#include "policy/yaml_util.h"

#include "absl/strings/str_cat.h"

namespace kbs::policy::internal {
namespace {

// yaml-cpp recurses once per nesting level and has no depth limit, so a
// document nested thousands of levels deep would exhaust the stack. This
// conservative pre-scan bounds the depth before yaml-cpp sees the text:
// flow brackets outside quotes, and block indicators ("- ", "? ") and
// indentation at the start of each line.
bool NestingWithin(absl::string_view text, int max_nesting, std::string& why) {
  int flow = 0;
  char quote = 0;
  bool line_start = true;
  int line_indicators = 0;
  int indent = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      line_start = true;
      line_indicators = 0;
      indent = 0;
      if (quote == '\'') continue;  // single-quoted scalars may span lines
      continue;
    }
    if (quote != 0) {
      if (quote == '"' && c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (line_start) {
      if (c == ' ') {
        if (++indent > 8 * max_nesting) {
          why = absl::StrCat("indentation deeper than ", 8 * max_nesting, " columns");
          return false;
        }
        continue;
      }
      if ((c == '-' || c == '?') && i + 1 < text.size() && text[i + 1] == ' ') {
        if (++line_indicators > max_nesting) {
          why = absl::StrCat("more than ", max_nesting, " nested block entries on one line");
          return false;
        }
        ++i;
        continue;
      }
      line_start = false;
    }
    if (c == '#') {
      // Comment to end of line (only when preceded by space or at start).
      if (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n') {
        while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      }
      continue;
    }
    // Anchors and aliases (YAML 1.2 §6.9.2, §7.1) would let a small
    // document expand into a huge one; policies have no use for them.
    // Indicators count only where a node can start (after a separator); a
    // quote or `*` inside a plain scalar ("it's", "models/*") is text.
    const bool token_start = i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' ||
                             text[i - 1] == '\n' || text[i - 1] == '[' || text[i - 1] == '{' ||
                             text[i - 1] == ',' || text[i - 1] == '-' || text[i - 1] == ':';
    if ((c == '&' || c == '*') && token_start && i + 1 < text.size() && text[i + 1] != ' ' &&
        text[i + 1] != '\n' && text[i + 1] != '\t') {
      why =
          "YAML anchors and aliases (&name, *name) are not accepted; quote a value that starts "
          "with & or *";
      return false;
    }
    if ((c == '"' || c == '\'') && token_start) {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++flow > max_nesting) {
        why = absl::StrCat("flow collections nested deeper than ", max_nesting);
        return false;
      }
    } else if ((c == ']' || c == '}') && flow > 0) {
      --flow;
    }
  }
  return true;
}

}  // namespace

SourcePos PosOf(const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

std::optional<YAML::Node> LoadYaml(absl::string_view text, int max_nesting, PolicyError& error) {
  std::string why;
  if (!NestingWithin(text, max_nesting, why)) {
    error = {{}, "", "", absl::StrCat("the document is not accepted: ", why)};
    return std::nullopt;
  }
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    error = {
        {e.mark.line + 1, e.mark.column + 1}, "", "", absl::StrCat("not valid YAML/JSON: ", e.msg)};
    return std::nullopt;
  } catch (const std::exception& e) {
    error = {{}, "", "", absl::StrCat("the document could not be read: ", e.what())};
    return std::nullopt;
  }
}

}  // namespace kbs::policy::internal
