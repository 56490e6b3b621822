#include "serve/jinja.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace moec {

using Json = JinjaTemplate::Json;

namespace {

// Bounds on what a template may cost (a checkpoint's template is input).
constexpr int kMaxDepth = 200;  // parser nesting and macro recursion (steps and output: JinjaLimits)

[[noreturn]] void fail(int line, const std::string& what) {
  throw JinjaError(fmt::format("chat template line {}: {}", line, what));
}

// ---- values ------------------------------------------------------------------

struct Node;

// A JSON value, "undefined" (a missing name, key or index), or a macro.
struct Value {
  Json j;
  bool undefined = false;
  const Node* macro = nullptr;
  Value() = default;
  Value(Json v) : j(std::move(v)) {}  // NOLINT: values are JSON most of the time
  static Value undef() {
    Value v;
    v.undefined = true;
    return v;
  }
};

bool truthy(const Value& v) {
  if (v.undefined) return false;
  if (v.macro) return true;
  const Json& j = v.j;
  switch (j.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return j.get<bool>();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return j.get<int64_t>() != 0;
    case Json::value_t::number_float: return j.get<double>() != 0.0;
    case Json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !j.empty();
    default: return false;
  }
}

// Python's repr of a float: shortest round trip, always with a '.' or exponent.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string py_str(const Json& j);

std::string py_repr_string(const std::string& s) {
  const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out + q;
}

std::string py_repr(const Json& j) { return j.is_string() ? py_repr_string(j.get<std::string>()) : py_str(j); }

// What `{{ x }}` prints: Python's str() of the value.
std::string py_str(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return j.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer: return std::to_string(j.get<int64_t>());
    case Json::value_t::number_unsigned: return std::to_string(j.get<uint64_t>());
    case Json::value_t::number_float: return float_repr(j.get<double>());
    case Json::value_t::string: return j.get<std::string>();
    case Json::value_t::array: {
      std::string s = "[";
      for (size_t i = 0; i < j.size(); ++i) s += (i ? ", " : "") + py_repr(j[i]);
      return s + "]";
    }
    case Json::value_t::object: {
      std::string s = "{";
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it, first = false)
        s += (first ? "" : ", ") + py_repr_string(it.key()) + ": " + py_repr(it.value());
      return s + "}";
    }
    default: return "";
  }
}

std::string to_str(const Value& v) { return v.undefined || v.macro ? "" : py_str(v.j); }

// Python's json.dumps(x, ensure_ascii=False, indent, separators) as
// transformers' `tojson` filter calls it.
void dump_json(const Json& j, int indent, int depth, std::string& out) {
  auto newline = [&](int d) {
    out += '\n';
    out.append(size_t(indent * d), ' ');
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (j.type()) {
    case Json::value_t::string: {
      out += '"';
      for (unsigned char c : j.get_ref<const std::string&>()) {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\t': out += "\\t"; break;
          case '\b': out += "\\b"; break;
          case '\f': out += "\\f"; break;
          default:
            if (c < 0x20)
              out += fmt::format("\\u{:04x}", unsigned(c));
            else
              out += char(c);
        }
      }
      out += '"';
      return;
    }
    case Json::value_t::null: out += "null"; return;
    case Json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case Json::value_t::number_float: {
      const double d = j.get<double>();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : float_repr(d);
      return;
    }
    case Json::value_t::array:
      if (j.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < j.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        dump_json(j[i], indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    case Json::value_t::object: {
      if (j.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it, first = false) {
        if (!first) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        dump_json(Json(it.key()), indent, depth + 1, out);
        out += ": ";
        dump_json(it.value(), indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
    default: out += py_str(j); return;
  }
}

// ---- UTF-8 code points (Python strings index by code point) ------------------

// Bytes of the code point at s[i] (a stray byte counts as one).
size_t code_point_bytes(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  return std::min(n, s.size() - i);
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0, n; i < s.size(); i += n) {
    n = code_point_bytes(s, i);
    out.push_back(s.substr(i, n));
  }
  return out;
}

// len() and s[k] without splitting the string into a vector of code points.
int64_t code_point_count(const std::string& s) {
  int64_t count = 0;
  for (size_t i = 0; i < s.size(); i += code_point_bytes(s, i)) ++count;
  return count;
}
std::string code_point_at(const std::string& s, int64_t k) {  // 0 <= k < code_point_count(s)
  size_t i = 0;
  for (; k > 0; --k) i += code_point_bytes(s, i);
  return s.substr(i, code_point_bytes(s, i));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string strip(const std::string& s, bool left, bool right, const std::optional<std::string>& chars) {
  auto strip_char = [&](char c) { return chars ? chars->find(c) != std::string::npos : is_space(c); };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && strip_char(s[b])) ++b;
  if (right)
    while (e > b && strip_char(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = char(f(c));
  return s;
}

std::string title_case(std::string s) {
  bool start = true;
  for (char& c : s) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) c = char(start ? std::toupper(c) : std::tolower(c));
    start = !alpha && !std::isdigit(static_cast<unsigned char>(c));
  }
  return s;
}

std::string capitalize(std::string s) {
  s = ascii_map(s, [](int c) { return std::tolower(c); });
  if (!s.empty()) s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep) {  // runs of whitespace, no empty parts
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_space(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(strip(s.substr(i), false, true, std::nullopt));
        break;
      }
      size_t e = i;
      while (e < s.size() && !is_space(s[e])) ++e;
      out.push_back(s.substr(i, e - i));
      i = e;
    }
    return out;
  }
  if (sep->empty()) throw JinjaError("split(): empty separator");
  size_t start = 0;
  while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
    const size_t at = s.find(*sep, start);
    if (at == std::string::npos) break;
    out.push_back(s.substr(start, at - start));
    start = at + sep->size();
  }
  out.push_back(s.substr(start));
  return out;
}

// s with the first `count` (all when negative) occurrences of `from`
// replaced, built in one pass (replacing in place moved the tail at every
// match: minutes for a megabyte); nullopt as soon as it grows past max_bytes.
std::optional<std::string> replace_all(const std::string& s, const std::string& from, const std::string& to,
                                       int64_t count, size_t max_bytes) {
  if (from.empty()) return s;
  std::string out;
  size_t start = 0, at;
  for (int64_t n = 0; (count < 0 || n < count) && (at = s.find(from, start)) != std::string::npos; ++n) {
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
    if (out.size() > max_bytes) return std::nullopt;
  }
  out.append(s, start, std::string::npos);
  if (out.size() > max_bytes) return std::nullopt;
  return out;
}

// ---- lexing: template text into segments -------------------------------------

struct Segment {
  enum Kind { Text, Output, Statement } kind;
  std::string body;
  int line;
};

int line_at(const std::string& s, size_t pos) { return 1 + int(std::count(s.begin(), s.begin() + long(pos), '\n')); }

// Where the tag that starts at `open` ends (the index of its closing
// delimiter), skipping string literals inside {{ }} and {% %}.
size_t tag_end(const std::string& src, size_t open, const char* close, bool strings) {
  char quote = 0;
  for (size_t i = open + 2; i + 1 < src.size(); ++i) {
    const char c = src[i];
    if (quote) {
      if (c == '\\')
        ++i;
      else if (c == quote)
        quote = 0;
    } else if (strings && (c == '\'' || c == '"')) {
      quote = c;
    } else if (c == close[0] && src[i + 1] == close[1]) {
      return i;
    }
  }
  fail(line_at(src, open), fmt::format("a tag opened here is never closed with '{}'", close));
}

// trim_blocks: the first newline after a statement or comment tag goes;
// lstrip_blocks: spaces and tabs between a line's start and such a tag go;
// '-' strips all whitespace on its side, '+' turns the two rules off.
std::vector<Segment> lex(const std::string& src) {
  std::vector<Segment> out;
  size_t pos = 0;
  bool strip_next = false, trim_newline = false;
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    const size_t text_end = open == std::string::npos ? src.size() : open;
    std::string text = src.substr(pos, text_end - pos);
    const bool line_start = pos == 0 || src[pos - 1] == '\n';
    if (strip_next) {
      text = strip(text, true, false, std::nullopt);
    } else if (trim_newline) {
      if (text.rfind("\r\n", 0) == 0)
        text.erase(0, 2);
      else if (!text.empty() && text[0] == '\n')
        text.erase(0, 1);
    }
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::Text, text, line_at(src, pos)});
      break;
    }
    const char kind = src[open + 1];
    const char left = open + 2 < src.size() ? src[open + 2] : 0;
    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const size_t end = tag_end(src, open, close, kind != '#');
    const bool block = kind != '{';
    if (left == '-') {
      text = strip(text, false, true, std::nullopt);
    } else if (block && left != '+') {
      const size_t nl = text.rfind('\n');
      const size_t tail = nl == std::string::npos ? 0 : nl + 1;
      const bool blank = std::all_of(text.begin() + long(tail), text.end(), [](char c) { return c == ' ' || c == '\t'; });
      if (blank && (nl != std::string::npos || line_start || trim_newline)) text.erase(tail);
    }
    if (!text.empty()) out.push_back({Segment::Text, text, line_at(src, pos)});
    size_t body_begin = open + 2 + ((left == '-' || left == '+') ? 1 : 0);
    size_t body_end = end;
    const char right = end > body_begin ? src[end - 1] : 0;
    if (right == '-' || right == '+') --body_end;
    if (kind != '#')
      out.push_back({kind == '{' ? Segment::Output : Segment::Statement, src.substr(body_begin, body_end - body_begin),
                     line_at(src, open)});
    strip_next = right == '-';
    trim_newline = block && right != '+' && right != '-';
    pos = end + 2;
  }
  return out;
}

// ---- lexing: tokens inside a tag ---------------------------------------------

struct Token {
  enum Kind { Name, String, Number, Op, End } kind;
  std::string text;
  Json value;  // String, Number
};

std::vector<Token> tokenize(const std::string& s, int line) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (is_space(c)) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = i;
      while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      out.push_back({Token::Name, s.substr(i, e - i), {}});
      i = e;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t e = i;
      bool is_float = false;
      while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      if (e + 1 < s.size() && s[e] == '.' && std::isdigit(static_cast<unsigned char>(s[e + 1]))) {
        is_float = true;
        ++e;
        while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
      }
      if (e < s.size() && (s[e] == 'e' || s[e] == 'E')) {  // 1e-5, 2.5E3
        size_t x = e + 1;
        if (x < s.size() && (s[x] == '+' || s[x] == '-')) ++x;
        if (x < s.size() && std::isdigit(static_cast<unsigned char>(s[x]))) {
          is_float = true;
          e = x;
          while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        }
      }
      std::string digits = s.substr(i, e - i);
      digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
      Json v;
      try {
        v = is_float ? Json(std::stod(digits)) : Json(int64_t(std::stoll(digits)));
      } catch (const std::exception&) {
        fail(line, "number '" + digits + "' out of range");
      }
      out.push_back({Token::Number, digits, v});
      i = e;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t e = i + 1;
      for (; e < s.size() && s[e] != c; ++e) {
        if (s[e] != '\\' || e + 1 >= s.size()) {
          v += s[e];
          continue;
        }
        const char x = s[++e];
        switch (x) {
          case 'n': v += '\n'; break;
          case 't': v += '\t'; break;
          case 'r': v += '\r'; break;
          case '\\': v += '\\'; break;
          case '\'': v += '\''; break;
          case '"': v += '"'; break;
          case '0': v += '\0'; break;
          default: v += '\\'; v += x;
        }
      }
      if (e >= s.size()) fail(line, "unterminated string literal");
      out.push_back({Token::String, v, Json(v)});
      i = e + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two)
        if (s.compare(i, 2, t) == 0) op = t;
      if (std::string("+-*/%~<>=!()[]{}.,:|").find(c) == std::string::npos)
        fail(line, fmt::format("unexpected character '{}'", c));
      out.push_back({Token::Op, op, {}});
      i += op.size();
    }
  }
  out.push_back({Token::End, "", {}});
  return out;
}

// ---- syntax tree -------------------------------------------------------------

struct Expr {
  enum Kind { Literal, Name, List, Dict, Attr, Index, Slice, Call, Filter, Test, Not, Neg, Binary, Cond } kind;
  int line = 0;
  Json literal;
  std::string name;  // Name, Attr, Filter, Test, Binary's operator
  std::vector<std::unique_ptr<Expr>> kids;  // operands; Call/Filter/Test: [0] is the subject, then arguments
  std::vector<std::string> keywords;        // Call/Filter/Test: names of the last keywords.size() arguments
  bool negate = false;                      // Test: `is not`
};
using ExprPtr = std::unique_ptr<Expr>;

struct Node {
  enum Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue } kind;
  int line = 0;
  std::string text;                        // Text; Set/SetBlock/Macro: name
  std::string attr;                        // Set: `ns.attr`
  std::vector<std::string> targets;        // For: loop variables; Macro: parameters
  std::vector<ExprPtr> exprs;              // If: conditions; For: [iterable, filter?]; Output/Set: [value]; Macro: defaults
  std::vector<std::vector<Node>> bodies;   // If: one per condition (+ else); For: [body, else]; others: [body]
  bool has_filter = false;                 // For
};

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : t_(std::move(tokens)), line_(line) {}

  ExprPtr expression() {
    if (++depth_ > kMaxDepth) fail(line_, "expression nested too deeply");
    ExprPtr e = or_expr();
    if (is_name("if")) {
      ++p_;
      auto c = make(Expr::Cond);
      c->kids.push_back(or_expr());
      c->kids.push_back(std::move(e));
      if (is_name("else")) {
        ++p_;
        c->kids.push_back(expression());
      }
      e = std::move(c);
    }
    --depth_;
    return e;
  }
  bool at_end() const { return t_[p_].kind == Token::End; }
  void expect_end() {
    if (!at_end()) fail(line_, fmt::format("unexpected '{}'", t_[p_].text));
  }
  bool is_name(const char* n) const { return t_[p_].kind == Token::Name && t_[p_].text == n; }
  bool is_op(const char* o) const { return t_[p_].kind == Token::Op && t_[p_].text == o; }
  void expect_op(const char* o) {
    if (!is_op(o)) fail(line_, fmt::format("expected '{}', found '{}'", o, t_[p_].text.empty() ? "end of tag" : t_[p_].text));
    ++p_;
  }
  std::string name() {
    if (t_[p_].kind != Token::Name) fail(line_, fmt::format("expected a name, found '{}'", t_[p_].text));
    return t_[p_++].text;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  bool accept_op(const char* o) {
    if (!is_op(o)) return false;
    ++p_;
    return true;
  }
  // An expression without a top-level `if` (for's iterable, before its filter).
  ExprPtr or_expression() { return or_expr(); }

 private:
  ExprPtr make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    return e;
  }
  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Binary);
    e->name = op;
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (accept_name("or")) e = binary("or", std::move(e), and_expr());
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (accept_name("and")) e = binary("and", std::move(e), not_expr());
    return e;
  }
  ExprPtr not_expr() {
    if (accept_name("not")) {
      if (++depth_ > kMaxDepth) fail(line_, "expression nested too deeply");
      auto e = make(Expr::Not);
      e->kids.push_back(not_expr());
      --depth_;
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    while (true) {
      static const char* ops[] = {"==", "!=", "<", "<=", ">", ">="};
      std::string op;
      for (const char* o : ops)
        if (is_op(o)) op = o;
      if (!op.empty()) {
        ++p_;
      } else if (is_name("in")) {
        ++p_;
        op = "in";
      } else if (is_name("not") && t_[p_ + 1].kind == Token::Name && t_[p_ + 1].text == "in") {
        p_ += 2;
        op = "not in";
      } else {
        return e;
      }
      e = binary(op, std::move(e), math1());
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[p_++].text;
      e = binary(op, std::move(e), concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (accept_op("~")) e = binary("~", std::move(e), math2());
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[p_++].text;
      e = binary(op, std::move(e), power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary();
    while (accept_op("**")) e = binary("**", std::move(e), unary());
    return e;
  }
  // Unary minus binds tighter than filters and tests (`-3 | abs` is 3), as
  // in Jinja: the operand takes no filters, the negation does.
  ExprPtr unary(bool with_filters = true) {
    ExprPtr e;
    if (accept_op("-")) {
      if (++depth_ > kMaxDepth) fail(line_, "expression nested too deeply");
      e = make(Expr::Neg);
      e->kids.push_back(unary(false));
      --depth_;
    } else if (accept_op("+")) {
      if (++depth_ > kMaxDepth) fail(line_, "expression nested too deeply");
      e = unary(false);
      --depth_;
    } else {
      e = postfix(primary(), false);
    }
    if (!with_filters) return e;
    return postfix(std::move(e), true);
  }
  // Arguments of a call, filter or test: positional, then name=value.
  void arguments(Expr& e) {
    expect_op("(");
    while (!accept_op(")")) {
      if (t_[p_].kind == Token::Name && t_[p_ + 1].kind == Token::Op && t_[p_ + 1].text == "=") {
        e.keywords.push_back(t_[p_].text);
        p_ += 2;
      } else if (!e.keywords.empty()) {
        fail(line_, "a positional argument after a keyword argument");
      }
      e.kids.push_back(expression());
      if (!is_op(")")) expect_op(",");
    }
  }
  // Attributes, subscripts and calls; with `filters`, also `| filter` and
  // `is test`.
  ExprPtr postfix(ExprPtr e, bool filters) {
    while (true) {
      if (accept_op(".")) {
        auto a = make(Expr::Attr);
        a->name = t_[p_].kind == Token::Number ? t_[p_++].text : name();
        a->kids.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        ++p_;
        e = subscript(std::move(e));
      } else if (is_op("(")) {
        auto c = make(Expr::Call);
        c->kids.push_back(std::move(e));
        arguments(*c);
        e = std::move(c);
      } else if (filters && accept_op("|")) {
        auto f = make(Expr::Filter);
        f->name = name();
        f->kids.push_back(std::move(e));
        if (is_op("(")) arguments(*f);
        e = std::move(f);
      } else if (filters && is_name("is")) {
        ++p_;
        auto t = make(Expr::Test);
        t->negate = accept_name("not");
        t->name = t_[p_].kind == Token::Op && (is_op("==") || is_op("!=")) ? t_[p_++].text : name();
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          arguments(*t);
        } else if (t_[p_].kind == Token::String || t_[p_].kind == Token::Number || is_op("[") || is_op("{") ||
                   (t_[p_].kind == Token::Name && !is_name("and") && !is_name("or") && !is_name("else") &&
                    !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is"))) {
          t->kids.push_back(primary());  // `is divisibleby 3`, `is sameas x`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr subscript(ExprPtr subject) {
    ExprPtr parts[3];
    bool slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!is_op(":") && !is_op("]")) parts[k] = expression();
      if (k < 2 && accept_op(":")) {
        slice = true;
        continue;
      }
      break;
    }
    expect_op("]");
    if (!slice) {
      if (!parts[0]) fail(line_, "an empty subscript []");
      auto e = make(Expr::Index);
      e->kids.push_back(std::move(subject));
      e->kids.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(Expr::Slice);
    e->kids.push_back(std::move(subject));
    for (auto& p : parts) e->kids.push_back(std::move(p));  // null: omitted
    return e;
  }
  ExprPtr primary() {
    const Token& t = t_[p_];
    if (t.kind == Token::String) {
      auto e = make(Expr::Literal);
      std::string s;
      while (t_[p_].kind == Token::String) s += t_[p_++].text;  // adjacent literals join, as in Python
      e->literal = s;
      return e;
    }
    if (t.kind == Token::Number) {
      auto e = make(Expr::Literal);
      e->literal = t_[p_++].value;
      return e;
    }
    if (t.kind == Token::Name) {
      const std::string n = t_[p_++].text;
      auto e = make(Expr::Literal);
      if (n == "true" || n == "True") {
        e->literal = true;
      } else if (n == "false" || n == "False") {
        e->literal = false;
      } else if (n == "none" || n == "None") {
        e->literal = nullptr;
      } else {
        e->kind = Expr::Name;
        e->name = n;
      }
      return e;
    }
    if (++depth_ > kMaxDepth) fail(line_, "expression nested too deeply");
    ExprPtr e;
    if (accept_op("(")) {
      if (accept_op(")")) {
        e = make(Expr::List);  // () is an empty tuple
      } else {
        e = expression();
        if (is_op(",")) {
          auto tuple = make(Expr::List);
          tuple->kids.push_back(std::move(e));
          while (accept_op(",") && !is_op(")")) tuple->kids.push_back(expression());
          e = std::move(tuple);
        }
        expect_op(")");
      }
    } else if (accept_op("[")) {
      e = make(Expr::List);
      while (!accept_op("]")) {
        e->kids.push_back(expression());
        if (!is_op("]")) expect_op(",");
      }
    } else if (accept_op("{")) {
      e = make(Expr::Dict);
      while (!accept_op("}")) {
        e->kids.push_back(expression());
        expect_op(":");
        e->kids.push_back(expression());
        if (!is_op("}")) expect_op(",");
      }
    } else {
      fail(line_, fmt::format("unexpected '{}'", t.text.empty() ? "end of tag" : t.text));
    }
    --depth_;
    return e;
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  int line_;
  int depth_ = 0;
};

// Statements: segments into a tree, each block up to its end tag.
class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Segment> segments) : s_(std::move(segments)) {}

  std::vector<Node> parse() {
    std::vector<Node> body = block({}, nullptr);
    if (p_ < s_.size()) fail(s_[p_].line, "unexpected '" + first_word(s_[p_]) + "'");
    return body;
  }

 private:
  static std::string first_word(const Segment& s) {
    const auto t = tokenize(s.body, s.line);
    return t.front().text;
  }

  // Nodes up to a statement whose keyword is one of `ends` (left unconsumed;
  // its keyword goes to *found).
  std::vector<Node> block(const std::vector<std::string>& ends, std::string* found) {
    if (++depth_ > kMaxDepth) fail(p_ < s_.size() ? s_[p_].line : 0, "blocks nested too deeply");
    std::vector<Node> nodes;
    while (p_ < s_.size()) {
      const Segment& seg = s_[p_];
      if (seg.kind == Segment::Text) {
        Node n;
        n.kind = Node::Text;
        n.line = seg.line;
        n.text = seg.body;
        nodes.push_back(std::move(n));
        ++p_;
        continue;
      }
      ExprParser ep(tokenize(seg.body, seg.line), seg.line);
      if (seg.kind == Segment::Output) {
        Node n;
        n.kind = Node::Output;
        n.line = seg.line;
        n.exprs.push_back(ep.expression());
        ep.expect_end();
        nodes.push_back(std::move(n));
        ++p_;
        continue;
      }
      const std::string keyword = ep.name();
      if (std::find(ends.begin(), ends.end(), keyword) != ends.end()) {
        if (found) *found = keyword;
        --depth_;
        return nodes;
      }
      ++p_;
      nodes.push_back(statement(keyword, ep, seg.line));
    }
    if (!ends.empty())
      fail(s_.empty() ? 0 : s_.back().line, fmt::format("missing '{{% {} %}}' at the end of the template", ends.front()));
    --depth_;
    return nodes;
  }

  // The end tag that closed a block: consumes it and returns its parser.
  ExprParser closing() {
    const Segment& seg = s_[p_++];
    ExprParser ep(tokenize(seg.body, seg.line), seg.line);
    ep.name();
    return ep;
  }

  Node statement(const std::string& keyword, ExprParser& ep, int line) {
    Node n;
    n.line = line;
    std::string found;
    if (keyword == "if") {
      n.kind = Node::If;
      n.exprs.push_back(ep.expression());
      ep.expect_end();
      while (true) {
        n.bodies.push_back(block({"endif", "elif", "else"}, &found));
        ExprParser end = closing();
        if (found == "elif") {
          n.exprs.push_back(end.expression());
          end.expect_end();
        } else if (found == "else") {
          end.expect_end();
          n.bodies.push_back(block({"endif"}, &found));
          closing().expect_end();
          break;
        } else {
          end.expect_end();
          break;
        }
      }
    } else if (keyword == "for") {
      n.kind = Node::For;
      do n.targets.push_back(ep.name());
      while (ep.accept_op(","));
      if (!ep.accept_name("in")) fail(line, "expected 'in' in a for loop");
      n.exprs.push_back(ep.or_expression());
      if (ep.accept_name("if")) {
        n.has_filter = true;
        n.exprs.push_back(ep.expression());
      }
      ep.accept_name("recursive") ? fail(line, "recursive loops are not supported") : void();
      ep.expect_end();
      n.bodies.push_back(block({"endfor", "else"}, &found));
      closing().expect_end();
      n.bodies.emplace_back();
      if (found == "else") {
        n.bodies.back() = block({"endfor"}, &found);
        closing().expect_end();
      }
    } else if (keyword == "set") {
      n.text = ep.name();
      if (ep.accept_op(".")) n.attr = ep.name();
      if (ep.accept_op("=")) {
        n.kind = Node::Set;
        n.exprs.push_back(ep.expression());
        ep.expect_end();
      } else {
        if (!n.attr.empty()) fail(line, "a block set needs a plain name");
        ep.expect_end();
        n.kind = Node::SetBlock;
        n.bodies.push_back(block({"endset"}, &found));
        closing().expect_end();
      }
    } else if (keyword == "macro") {
      n.kind = Node::Macro;
      n.text = ep.name();
      ep.expect_op("(");
      while (!ep.accept_op(")")) {
        n.targets.push_back(ep.name());
        n.exprs.push_back(ep.accept_op("=") ? ep.expression() : nullptr);
        if (!ep.is_op(")")) ep.expect_op(",");
      }
      ep.expect_end();
      n.bodies.push_back(block({"endmacro"}, &found));
      closing();
    } else if (keyword == "break" || keyword == "continue") {
      n.kind = keyword == "break" ? Node::Break : Node::Continue;
      ep.expect_end();
    } else if (keyword == "generation") {  // transformers' assistant-mask marker: just its body
      ep.expect_end();
      n.kind = Node::If;
      auto always = std::make_unique<Expr>();
      always->kind = Expr::Literal;
      always->literal = true;
      n.exprs.push_back(std::move(always));
      n.bodies.push_back(block({"endgeneration"}, &found));
      closing().expect_end();
    } else {
      fail(line, fmt::format("'{{% {} %}}' is not supported", keyword));
    }
    return n;
  }

  std::vector<Segment> s_;
  size_t p_ = 0;
  int depth_ = 0;
};

}  // namespace

struct JinjaTemplate::Program {
  std::vector<Node> body;
};

namespace {

// ---- rendering ---------------------------------------------------------------

enum class Flow { Normal, Break, Continue };

int64_t as_int(const Value& v, int line, const char* what) {
  if (v.j.is_number_integer() || v.j.is_number_unsigned()) return v.j.get<int64_t>();
  if (v.j.is_boolean()) return v.j.get<bool>() ? 1 : 0;
  fail(line, fmt::format("{} must be an integer, got {}", what, v.undefined ? "undefined" : v.j.type_name()));
}

double as_number(const Value& v, int line) {
  if (v.j.is_number()) return v.j.get<double>();
  if (v.j.is_boolean()) return v.j.get<bool>() ? 1.0 : 0.0;
  fail(line, fmt::format("expected a number, got {}", v.undefined ? "undefined" : v.j.type_name()));
}

bool is_int(const Json& j) { return j.is_number_integer() || j.is_number_unsigned() || j.is_boolean(); }

// The items a for loop or filter walks: list elements, dict keys, string
// characters.
Json iterable(const Value& v, int line) {
  if (v.undefined || v.j.is_null()) return Json::array();
  if (v.j.is_array()) return v.j;
  if (v.j.is_object()) {
    Json keys = Json::array();
    for (auto it = v.j.begin(); it != v.j.end(); ++it) keys.push_back(it.key());
    return keys;
  }
  if (v.j.is_string()) {
    Json chars = Json::array();
    for (auto& c : code_points(v.j.get<std::string>())) chars.push_back(c);
    return chars;
  }
  fail(line, fmt::format("cannot iterate over {}", v.j.type_name()));
}

bool equal(const Value& a, const Value& b) {
  if (a.undefined || b.undefined) return a.undefined && b.undefined;
  return a.j == b.j;
}

bool less(const Value& a, const Value& b, int line) {
  if (a.j.is_number() && b.j.is_number()) return a.j.get<double>() < b.j.get<double>();
  if (a.j.is_string() && b.j.is_string()) return a.j.get_ref<const std::string&>() < b.j.get_ref<const std::string&>();
  if (a.j.is_array() && b.j.is_array()) return a.j < b.j;
  fail(line, fmt::format("cannot compare {} with {}", a.j.type_name(), b.j.type_name()));
}

bool contains(const Value& haystack, const Value& needle, int line) {
  const Json& h = haystack.j;
  if (h.is_string()) {
    if (!needle.j.is_string()) fail(line, "'in <string>' needs a string on the left");
    return h.get_ref<const std::string&>().find(needle.j.get_ref<const std::string&>()) != std::string::npos;
  }
  if (h.is_array()) return std::any_of(h.begin(), h.end(), [&](const Json& x) { return x == needle.j; });
  if (h.is_object()) return needle.j.is_string() && h.contains(needle.j.get<std::string>());
  if (haystack.undefined || h.is_null()) fail(line, "'in' on an undefined or none value");
  fail(line, fmt::format("'in' on {}", h.type_name()));
}

// Python slice semantics over n items.
std::vector<int64_t> slice_indices(int64_t n, const std::optional<int64_t>& a, const std::optional<int64_t>& b,
                                   const std::optional<int64_t>& c, int line) {
  const int64_t step = c.value_or(1);
  if (step == 0) fail(line, "slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + n : *v;
    return std::clamp(x, lo, hi);
  };
  std::vector<int64_t> out;
  if (step > 0) {
    const int64_t start = clamp(a, 0, 0, n), stop = clamp(b, n, 0, n);
    for (int64_t i = start; i < stop; i += step) out.push_back(i);
  } else {
    const int64_t start = clamp(a, n - 1, -1, n - 1), stop = clamp(b, -1, -1, n - 1);
    for (int64_t i = start; i > stop; i += step) out.push_back(i);
  }
  return out;
}

bool is_builtin(const std::string& name) {
  return name == "range" || name == "namespace" || name == "dict" || name == "raise_exception" ||
         name == "strftime_now";
}

class Renderer {
 public:
  using Frame = std::map<std::string, Value>;
  // subject() holds references into frames while the vector of frames may
  // grow: moving a map must keep its nodes where they are.
  static_assert(std::is_nothrow_move_constructible_v<Frame>);

  Renderer(const Json& variables, const JinjaLimits& limits) : limits_(limits) {
    frames_.emplace_back();
    if (variables.is_object())
      for (auto it = variables.begin(); it != variables.end(); ++it) frames_.back()[it.key()] = Value(it.value());
  }

  std::string run(const std::vector<Node>& body) {
    exec(body);
    return std::move(out_);
  }

 private:

  void step(int line, int64_t n = 1) {
    steps_ += n;
    if (steps_ > limits_.steps)
      fail(line, fmt::format("the template ran too long: over {} steps (a runaway loop?)", limits_.steps));
  }
  void emit(const std::string& s, int line) {
    out_ += s;
    check_size(out_.size(), line, "the rendered text");
  }
  void check_size(size_t bytes, int line, const char* what) {
    if (bytes > limits_.output_bytes) too_large(line, what);
  }
  [[noreturn]] void too_large(int line, const char* what) {
    fail(line, fmt::format("{} is over {} bytes", what, limits_.output_bytes));
  }
  std::string replaced(const std::string& s, const std::string& from, const std::string& to, int64_t count, int line) {
    std::optional<std::string> out = replace_all(s, from, to, count, limits_.output_bytes);
    if (!out) too_large(line, "a replaced string");
    return std::move(*out);
  }
  // Every value an expression makes is charged for its size, since building
  // or copying it cost that much (one step per 4 items of an array or object,
  // nested ones included, and per KiB of string), and no string may outgrow
  // the output bound: so a loop that copies a large variable, or doubles a
  // string, ends with JinjaError instead of running for minutes or out of
  // memory.
  void charge(const Json& j, int line) {
    if (j.is_string()) {
      const size_t bytes = j.get_ref<const std::string&>().size();
      check_size(bytes, line, "a string");
      if (bytes >= 1024) step(line, int64_t(bytes >> 10));
      return;
    }
    if (!j.is_structured() || j.empty()) return;
    int64_t items = 0, bytes = 0;
    std::vector<const Json*> todo{&j};  // no recursion: request JSON may nest deeply
    while (!todo.empty()) {
      const Json* x = todo.back();
      todo.pop_back();
      if (x->is_structured()) {
        items += int64_t(x->size());
        for (const Json& child : *x) todo.push_back(&child);
      } else if (x->is_string()) {
        bytes += int64_t(x->get_ref<const std::string&>().size());
      }
    }
    step(line, items / 4 + (bytes >> 10));
  }

  Value* lookup(const std::string& name) {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &f->second;
    }
    return nullptr;
  }

  Flow exec(const std::vector<Node>& nodes) {
    for (const Node& n : nodes) {
      const Flow f = exec(n);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n) {
    step(n.line);
    switch (n.kind) {
      case Node::Text: emit(n.text, n.line); return Flow::Normal;
      case Node::Output: emit(to_str(eval(*n.exprs[0])), n.line); return Flow::Normal;
      case Node::If:
        for (size_t i = 0; i < n.bodies.size(); ++i)
          if (i >= n.exprs.size() || truthy(eval(*n.exprs[i]))) return exec(n.bodies[i]);
        return Flow::Normal;
      case Node::For: return exec_for(n);
      case Node::Set: {
        Value v = eval(*n.exprs[0]);
        if (n.attr.empty()) {
          frames_.back()[n.text] = std::move(v);
        } else {
          Value* target = lookup(n.text);
          if (!target || !target->j.is_object()) fail(n.line, fmt::format("'{}' is not a namespace", n.text));
          target->j[n.attr] = std::move(v.j);
        }
        return Flow::Normal;
      }
      case Node::SetBlock: {
        std::string saved = std::move(out_);
        out_.clear();
        exec(n.bodies[0]);
        frames_.back()[n.text] = Value(Json(std::move(out_)));
        out_ = std::move(saved);
        return Flow::Normal;
      }
      case Node::Macro: {
        Value m;
        m.macro = &n;
        frames_.back()[n.text] = m;
        return Flow::Normal;
      }
      case Node::Break: return Flow::Break;
      case Node::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n) {
    const Json all = iterable(eval(*n.exprs[0]), n.line);
    frames_.emplace_back();
    // The `if` filter runs before `loop` counts items (as in Jinja).
    std::vector<const Json*> items;
    for (const Json& x : all) {
      if (n.has_filter) bind_targets(n, x);
      if (!n.has_filter || truthy(eval(*n.exprs[1]))) items.push_back(&x);
      step(n.line);
    }
    const int64_t len = int64_t(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step(n.line);
      // What the body set in the last iteration goes; the loop variables
      // stay, to be overwritten: re-creating them (map nodes, the `loop`
      // object) cost ~3 µs an iteration, and fuzzing found nested loops
      // that spent seconds on it within the step bound.
      Frame& frame = frames_.back();
      for (auto it = frame.begin(); it != frame.end();)
        it = it->first == "loop" || is_target(n, it->first) ? std::next(it) : frame.erase(it);
      bind_targets(n, *items[size_t(i)]);
      update_loop(frame["loop"].j, i, len, items);
      if (exec(n.bodies[0]) == Flow::Break) break;
    }
    frames_.pop_back();
    if (len == 0) return exec(n.bodies[1]);
    return Flow::Normal;
  }

  static Json make_loop(int64_t i, int64_t len, const std::vector<const Json*>& items) {
    Json loop = {{"index", i + 1},           {"index0", i},         {"revindex", len - i},
                 {"revindex0", len - i - 1}, {"first", i == 0},     {"last", i == len - 1},
                 {"length", len}};
    if (i > 0) loop["previtem"] = *items[size_t(i - 1)];  // absent: undefined, as in Jinja
    if (i + 1 < len) loop["nextitem"] = *items[size_t(i + 1)];
    return loop;
  }

  // `loop` for item i, updated in place from item i − 1's (the same keys in
  // the same order as make_loop's); built anew where its keys change (the
  // first two items) or the body replaced it.
  static void update_loop(Json& loop, int64_t i, int64_t len, const std::vector<const Json*>& items) {
    // Item i − 1 ≥ 1 had every key: the 7 counters, previtem and nextitem
    // (unless the body replaced `loop`).
    static const char* const kKeys[] = {"index", "index0", "revindex", "revindex0", "first",
                                        "last",  "length", "previtem", "nextitem"};
    bool same = i >= 2 && loop.is_object() && loop.size() == 9;
    if (same) {
      int k = 0;
      for (auto it = loop.begin(); same && it != loop.end(); ++it) same = it.key() == kKeys[k++];
    }
    if (!same) {
      loop = make_loop(i, len, items);
      return;
    }
    loop["index"] = i + 1;
    loop["index0"] = i;
    loop["revindex"] = len - i;
    loop["revindex0"] = len - i - 1;
    loop["first"] = false;
    loop["last"] = i == len - 1;
    loop["length"] = len;
    loop["previtem"] = *items[size_t(i - 1)];
    if (i + 1 < len)
      loop["nextitem"] = *items[size_t(i + 1)];
    else
      loop.erase("nextitem");
  }

  static bool is_target(const Node& n, const std::string& name) {
    return std::find(n.targets.begin(), n.targets.end(), name) != n.targets.end();
  }

  void bind_targets(const Node& n, const Json& x) {
    Frame& f = frames_.back();
    if (n.targets.size() == 1) {
      f[n.targets[0]] = Value(x);
      return;
    }
    if (!x.is_array() || x.size() != n.targets.size())
      fail(n.line, fmt::format("cannot unpack {} into {} loop variables", py_repr(x), n.targets.size()));
    for (size_t k = 0; k < n.targets.size(); ++k) f[n.targets[k]] = Value(x[k]);
  }

  // ---- expressions ----

  Value eval(const Expr& e) {
    Value v = evaluate(e);
    charge(v.j, e.line);
    return v;
  }

  Value evaluate(const Expr& e) {
    switch (e.kind) {
      case Expr::Literal: return Value(e.literal);
      case Expr::Name: {
        if (Value* v = lookup(e.name)) return *v;  // a copy, charged by eval
        if (is_builtin(e.name)) return Value(Json("<built-in function " + e.name + ">"));  // `is defined`
        return Value::undef();
      }
      case Expr::List: {
        Json a = Json::array();
        for (auto& k : e.kids) a.push_back(eval(*k).j);
        return Value(std::move(a));
      }
      case Expr::Dict: {
        Json o = Json::object();
        for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
          const Value k = eval(*e.kids[i]);
          o[k.j.is_string() ? k.j.get<std::string>() : py_str(k.j)] = eval(*e.kids[i + 1]).j;
        }
        return Value(std::move(o));
      }
      case Expr::Attr: {
        Value held;
        return attribute(defined(*e.kids[0], held), e.name);
      }
      case Expr::Index: {
        Value held;
        const Value& v = defined(*e.kids[0], held);
        return index(v, eval(*e.kids[1]), e.line);
      }
      case Expr::Slice: return slice(e);
      case Expr::Call: return call(e);
      case Expr::Filter: return filter(e);
      case Expr::Test: return Value(Json(test(e) != e.negate));
      case Expr::Not: return Value(Json(!truthy(eval(*e.kids[0]))));
      case Expr::Neg: {
        const Value v = eval(*e.kids[0]);
        if (is_int(v.j)) return Value(Json(-as_int(v, e.line, "operand")));
        return Value(Json(-as_number(v, e.line)));
      }
      case Expr::Binary: return binary(e);
      case Expr::Cond:
        if (truthy(eval(*e.kids[0]))) return eval(*e.kids[1]);
        return e.kids.size() > 2 ? eval(*e.kids[2]) : Value::undef();
    }
    return Value::undef();
  }

  // A subject of . or [] must be defined (Jinja raises UndefinedError).
  Value defined(const Expr& e) {
    Value held;
    return defined(e, held);
  }

  // The value of an expression that is only read (the subject of ., [], a
  // filter, a test or a method): a named variable in place, without the copy
  // eval makes (reading `messages | length` in the message loop copied every
  // message on every iteration); anything else evaluated into `held`. The
  // reference stays valid while the subject is used: expressions set nothing
  // (a macro called meanwhile sets names in its own frame), and a map keeps
  // its nodes where they are when the vector of frames grows.
  // A string subject is charged one step per 64 bytes: what is done to it
  // (an index, `length`, a method) may read all of it, one UTF-8 code point
  // at a time, and `s[i]` in a loop over a megabyte was otherwise free.
  const Value& subject(const Expr& e, Value& held) {
    const Value* v = e.kind == Expr::Name ? lookup(e.name) : nullptr;
    if (!v) {
      held = eval(e);
      v = &held;
    }
    if (v->j.is_string()) step(e.line, int64_t(v->j.get_ref<const std::string&>().size() / 64));
    return *v;
  }
  const Value& defined(const Expr& e, Value& held) {
    const Value& v = subject(e, held);
    if (v.undefined)
      fail(e.line, e.kind == Expr::Name ? fmt::format("'{}' is undefined", e.name)
                                        : std::string("an attribute or item of an undefined value"));
    return v;
  }

  static Value attribute(const Value& v, const std::string& name) {
    if (v.j.is_object()) {
      auto it = v.j.find(name);
      if (it != v.j.end()) return Value(*it);
    }
    if (v.j.is_array() && !name.empty() && std::isdigit(static_cast<unsigned char>(name[0]))) {
      const size_t i = std::stoul(name);
      if (i < v.j.size()) return Value(v.j[i]);
    }
    return Value::undef();
  }

  static Value index(const Value& v, const Value& k, int line) {
    if (v.j.is_object()) {
      if (!k.j.is_string()) {
        const std::string key = py_str(k.j);
        return v.j.contains(key) ? Value(v.j[key]) : Value::undef();
      }
      auto it = v.j.find(k.j.get<std::string>());
      return it != v.j.end() ? Value(*it) : Value::undef();
    }
    if (v.j.is_array() || v.j.is_string()) {
      if (!is_int(k.j)) return Value::undef();
      int64_t i = as_int(k, line, "an index");
      if (v.j.is_array()) {
        const int64_t n = int64_t(v.j.size());
        if (i < 0) i += n;
        return i >= 0 && i < n ? Value(v.j[size_t(i)]) : Value::undef();
      }
      const std::string& s = v.j.get_ref<const std::string&>();
      const int64_t n = code_point_count(s);
      if (i < 0) i += n;
      return i >= 0 && i < n ? Value(Json(code_point_at(s, i))) : Value::undef();
    }
    return Value::undef();
  }

  Value slice(const Expr& e) {
    const Value v = defined(*e.kids[0]);
    std::optional<int64_t> parts[3];
    for (int k = 0; k < 3; ++k)
      if (e.kids[size_t(k) + 1]) parts[k] = as_int(eval(*e.kids[size_t(k) + 1]), e.line, "a slice bound");
    if (v.j.is_array()) {
      Json out = Json::array();
      for (int64_t i : slice_indices(int64_t(v.j.size()), parts[0], parts[1], parts[2], e.line))
        out.push_back(v.j[size_t(i)]);
      return Value(std::move(out));
    }
    if (v.j.is_string()) {
      const auto cps = code_points(v.j.get<std::string>());
      std::string out;
      for (int64_t i : slice_indices(int64_t(cps.size()), parts[0], parts[1], parts[2], e.line)) out += cps[size_t(i)];
      return Value(Json(out));
    }
    fail(e.line, fmt::format("cannot slice {}", v.undefined ? "an undefined value" : v.j.type_name()));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.kids[0]);
      return truthy(a) ? eval(*e.kids[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.kids[0]);
      return truthy(a) ? a : eval(*e.kids[1]);
    }
    const Value a = eval(*e.kids[0]), b = eval(*e.kids[1]);
    if (op == "==") return Value(Json(equal(a, b)));
    if (op == "!=") return Value(Json(!equal(a, b)));
    if (op == "<") return Value(Json(less(a, b, e.line)));
    if (op == ">") return Value(Json(less(b, a, e.line)));
    if (op == "<=") return Value(Json(!less(b, a, e.line)));
    if (op == ">=") return Value(Json(!less(a, b, e.line)));
    if (op == "in") return Value(Json(contains(b, a, e.line)));
    if (op == "not in") return Value(Json(!contains(b, a, e.line)));
    if (op == "~") return Value(Json(to_str(a) + to_str(b)));
    if (op == "+") {
      if (a.j.is_string() && b.j.is_string()) return Value(Json(a.j.get<std::string>() + b.j.get<std::string>()));
      if (a.j.is_array() && b.j.is_array()) {
        Json out = a.j;
        for (const Json& x : b.j) out.push_back(x);
        return Value(std::move(out));
      }
    }
    if (op == "*" && (a.j.is_string() || b.j.is_string()) && (is_int(a.j) || is_int(b.j))) {
      const std::string& text = (a.j.is_string() ? a : b).j.get_ref<const std::string&>();
      const int64_t n = std::max<int64_t>(0, as_int(a.j.is_string() ? b : a, e.line, "a repeat count"));
      // Refused before it is built when too long, and charged for its copies
      // (a one-character text repeated a million times is a million appends).
      if (!text.empty() && uint64_t(n) > limits_.output_bytes / text.size()) too_large(e.line, "a repeated string");
      step(e.line, n / 64);
      std::string out;
      out.reserve(text.size() * size_t(n));
      for (int64_t i = 0; i < n; ++i) out += text;
      return Value(Json(std::move(out)));
    }
    if ((!a.j.is_number() && !a.j.is_boolean()) || (!b.j.is_number() && !b.j.is_boolean()))
      fail(e.line, fmt::format("'{}' between {} and {}", op, a.undefined ? "undefined" : a.j.type_name(),
                               b.undefined ? "undefined" : b.j.type_name()));
    const bool ints = is_int(a.j) && is_int(b.j);
    if (ints && op != "/" && op != "**") {
      const int64_t x = as_int(a, e.line, "operand"), y = as_int(b, e.line, "operand");
      if (op == "+") return Value(Json(x + y));
      if (op == "-") return Value(Json(x - y));
      if (op == "*") return Value(Json(x * y));
      if (y == 0) fail(e.line, "division by zero");
      const int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)) ? 1 : 0);  // Python floors
      if (op == "//") return Value(Json(q));
      return Value(Json(x - q * y));  // %
    }
    const double x = as_number(a, e.line), y = as_number(b, e.line);
    if (op == "+") return Value(Json(x + y));
    if (op == "-") return Value(Json(x - y));
    if (op == "*") return Value(Json(x * y));
    if (op == "**") {
      if (ints && y >= 0) return Value(Json(int64_t(std::llround(std::pow(x, y)))));
      return Value(Json(std::pow(x, y)));
    }
    if (y == 0) fail(e.line, "division by zero");
    if (op == "/") return Value(Json(x / y));
    if (op == "//") return Value(Json(std::floor(x / y)));
    return Value(Json(x - std::floor(x / y) * y));
  }

  // A call's or filter's arguments: positional ones after the subject, and
  // keywords by name.
  struct Args {
    std::vector<Value> pos;
    std::map<std::string, Value> kw;
    const Value* get(size_t i, const char* name) const {
      if (i < pos.size()) return &pos[i];
      auto it = kw.find(name);
      return it == kw.end() ? nullptr : &it->second;
    }
  };
  Args arguments(const Expr& e, size_t first) {
    Args a;
    const size_t n_kw = e.keywords.size(), n = e.kids.size();
    for (size_t i = first; i < n; ++i) {
      Value v = eval(*e.kids[i]);
      if (i >= n - n_kw)
        a.kw[e.keywords[i - (n - n_kw)]] = std::move(v);
      else
        a.pos.push_back(std::move(v));
    }
    return a;
  }

  static std::optional<std::string> opt_string(const Value* v) {
    if (!v || v->undefined || v->j.is_null()) return std::nullopt;
    return to_str(*v);
  }

  Value call(const Expr& e) {
    step(e.line);
    const Expr& callee = *e.kids[0];
    Args a = arguments(e, 1);
    if (callee.kind == Expr::Attr) {
      Value held;
      return method(defined(*callee.kids[0], held), callee.name, a, e.line);
    }
    if (callee.kind != Expr::Name) fail(e.line, "only names and methods can be called");
    const std::string& f = callee.name;
    if (Value* v = lookup(f); v && v->macro) return call_macro(*v->macro, a, e.line);
    if (f == "raise_exception") throw JinjaError(a.pos.empty() ? "the chat template raised an error" : to_str(a.pos[0]));
    if (f == "range") {
      if (a.pos.empty() || a.pos.size() > 3) fail(e.line, "range() takes 1 to 3 arguments");
      int64_t start = 0, stop, stepv = 1;
      if (a.pos.size() == 1) {
        stop = as_int(a.pos[0], e.line, "range()'s stop");
      } else {
        start = as_int(a.pos[0], e.line, "range()'s start");
        stop = as_int(a.pos[1], e.line, "range()'s stop");
        if (a.pos.size() == 3) stepv = as_int(a.pos[2], e.line, "range()'s step");
      }
      if (stepv == 0) fail(e.line, "range() step cannot be zero");
      Json out = Json::array();
      for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
        out.push_back(i);
        step(e.line);
      }
      return Value(std::move(out));
    }
    if (f == "namespace" || f == "dict") {
      Json o = Json::object();
      for (const Value& p : a.pos)
        if (p.j.is_object()) o.update(p.j);
      for (auto& [k, v] : a.kw) o[k] = v.j;
      return Value(std::move(o));
    }
    if (f == "strftime_now") {
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&now, &tm);
      char buf[256];
      const std::string fmt_s = a.pos.empty() ? "%Y-%m-%d" : to_str(a.pos[0]);
      const size_t n = std::strftime(buf, sizeof buf, fmt_s.c_str(), &tm);
      return Value(Json(std::string(buf, n)));
    }
    fail(e.line, fmt::format("unknown function '{}'", f));
  }

  Value call_macro(const Node& m, const Args& a, int line) {
    if (frames_.size() > size_t(kMaxDepth)) fail(line, "macro recursion too deep");
    if (a.pos.size() > m.targets.size()) fail(line, fmt::format("macro '{}' takes {} arguments", m.text, m.targets.size()));
    Frame f;
    for (size_t i = 0; i < m.targets.size(); ++i) {
      if (i < a.pos.size()) {
        f[m.targets[i]] = a.pos[i];
      } else if (auto it = a.kw.find(m.targets[i]); it != a.kw.end()) {
        f[m.targets[i]] = it->second;
      } else {
        f[m.targets[i]] = m.exprs[i] ? eval(*m.exprs[i]) : Value::undef();
      }
    }
    std::string saved = std::move(out_);
    out_.clear();
    frames_.push_back(std::move(f));
    exec(m.bodies[0]);
    frames_.pop_back();
    std::string result = std::move(out_);
    out_ = std::move(saved);
    return Value(Json(std::move(result)));
  }

  Value method(const Value& v, const std::string& m, const Args& a, int line) {
    const Json& j = v.j;
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      if (m == "strip") return Value(Json(strip(s, true, true, opt_string(a.get(0, "chars")))));
      if (m == "lstrip") return Value(Json(strip(s, true, false, opt_string(a.get(0, "chars")))));
      if (m == "rstrip") return Value(Json(strip(s, false, true, opt_string(a.get(0, "chars")))));
      if (m == "upper") return Value(Json(ascii_map(s, [](int c) { return std::toupper(c); })));
      if (m == "lower") return Value(Json(ascii_map(s, [](int c) { return std::tolower(c); })));
      if (m == "title") return Value(Json(title_case(s)));
      if (m == "capitalize") return Value(Json(capitalize(s)));
      if (m == "startswith" || m == "endswith") {
        const Value* p = a.get(0, "prefix");
        if (!p) fail(line, m + "() needs an argument");
        const Json options = p->j.is_array() ? p->j : Json::array({p->j});
        for (const Json& o : options) {
          if (!o.is_string()) fail(line, m + "() takes strings");
          const std::string& x = o.get_ref<const std::string&>();
          if (x.size() <= s.size() &&
              (m == "startswith" ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
            return Value(Json(true));
        }
        return Value(Json(false));
      }
      if (m == "split") {
        const Value* n = a.get(1, "maxsplit");
        Json out = Json::array();
        for (auto& part : split(s, opt_string(a.get(0, "sep")), n ? as_int(*n, line, "maxsplit") : -1))
          out.push_back(part);
        return Value(std::move(out));
      }
      if (m == "replace") {
        const Value* n = a.get(2, "count");
        if (a.pos.size() < 2) fail(line, "replace() needs two arguments");
        return Value(Json(replaced(s, to_str(a.pos[0]), to_str(a.pos[1]), n ? as_int(*n, line, "count") : -1, line)));
      }
      if (m == "find") {
        if (a.pos.empty()) fail(line, "find() needs an argument");
        const size_t at = s.find(to_str(a.pos[0]));
        return Value(Json(at == std::string::npos ? int64_t(-1) : code_point_count(s.substr(0, at))));
      }
      if (m == "count") {
        if (a.pos.empty() || to_str(a.pos[0]).empty()) fail(line, "count() needs a non-empty argument");
        const std::string x = to_str(a.pos[0]);
        int64_t n = 0;
        for (size_t at = s.find(x); at != std::string::npos; at = s.find(x, at + x.size())) ++n;
        return Value(Json(n));
      }
      if (m == "join") {
        if (a.pos.empty()) fail(line, "join() needs an argument");
        std::string out;
        bool first = true;
        for (const Json& x : iterable(a.pos[0], line)) {
          out += (first ? "" : s) + py_str(x);
          first = false;
        }
        return Value(Json(out));
      }
    } else if (j.is_object()) {
      if (m == "items") {
        Json out = Json::array();
        for (auto it = j.begin(); it != j.end(); ++it) out.push_back(Json::array({it.key(), it.value()}));
        return Value(std::move(out));
      }
      if (m == "keys" || m == "values") {
        Json out = Json::array();
        for (auto it = j.begin(); it != j.end(); ++it) out.push_back(m == "keys" ? Json(it.key()) : it.value());
        return Value(std::move(out));
      }
      if (m == "get") {
        if (a.pos.empty()) fail(line, "get() needs a key");
        const Value r = index(v, a.pos[0], line);
        if (!r.undefined) return r;
        return a.pos.size() > 1 ? a.pos[1] : Value(Json());
      }
    } else if (j.is_array()) {
      if (m == "index" || m == "count") {
        if (a.pos.empty()) fail(line, m + "() needs an argument");
        int64_t n = 0;
        for (size_t i = 0; i < j.size(); ++i) {
          if (j[i] != a.pos[0].j) continue;
          if (m == "index") return Value(Json(int64_t(i)));
          ++n;
        }
        if (m == "index") fail(line, "index(): value not in list");
        return Value(Json(n));
      }
    }
    fail(line, fmt::format("unknown method '{}' on {}", m, v.undefined ? "an undefined value" : j.type_name()));
  }

  // Attribute `attr` (dotted paths allowed) of an item, for selectattr/map.
  static Value item_attribute(const Json& x, const std::string& attr) {
    Value v(x);
    size_t start = 0;
    while (true) {
      const size_t dot = attr.find('.', start);
      v = attribute(v, attr.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos || v.undefined) return v;
      start = dot + 1;
    }
  }

  Value filter(const Expr& e) {
    step(e.line);
    Value held;
    const Value& v = subject(*e.kids[0], held);
    Args a = arguments(e, 1);
    return apply_filter(e.name, v, a, e.line);
  }

  Value apply_filter(const std::string& f, const Value& v, const Args& a, int line) {
    const Json& j = v.j;
    if (f == "safe" || f == "e" || f == "escape") {
      if (f == "safe") return v;
      fail(line, "HTML escaping is not supported (transformers renders without it)");
    }
    if (f == "trim") return Value(Json(strip(to_str(v), true, true, opt_string(a.get(0, "chars")))));
    if (f == "string") return Value(Json(to_str(v)));
    if (f == "lower") return Value(Json(ascii_map(to_str(v), [](int c) { return std::tolower(c); })));
    if (f == "upper") return Value(Json(ascii_map(to_str(v), [](int c) { return std::toupper(c); })));
    if (f == "title") return Value(Json(title_case(to_str(v))));
    if (f == "capitalize") return Value(Json(capitalize(to_str(v))));
    if (f == "length" || f == "count") {
      if (j.is_string()) return Value(Json(code_point_count(j.get_ref<const std::string&>())));
      if (j.is_array() || j.is_object()) return Value(Json(int64_t(j.size())));
      if (v.undefined) return Value(Json(int64_t(0)));
      fail(line, fmt::format("length of {}", j.type_name()));
    }
    if (f == "tojson") {
      const Value* ind = a.get(0, "indent");
      const int indent = ind && !ind->j.is_null() && !ind->undefined ? int(as_int(*ind, line, "indent")) : -1;
      std::string out;
      dump_json(j, indent, 0, out);
      return Value(Json(out));
    }
    if (f == "default" || f == "d") {
      const Value* b = a.get(1, "boolean");
      const bool by_truth = b && truthy(*b);
      if (v.undefined || (by_truth && !truthy(v))) {
        const Value* d = a.get(0, "default_value");
        return d ? *d : Value(Json(""));
      }
      return v;
    }
    if (f == "first" || f == "last") {
      const Json items = iterable(v, line);
      if (items.empty()) return Value::undef();
      return Value(f == "first" ? items.front() : items.back());
    }
    if (f == "join") {
      const std::string sep = a.get(0, "d") ? to_str(*a.get(0, "d")) : "";
      const Value* attr = a.get(1, "attribute");
      std::string out;
      bool first = true;
      for (const Json& x : iterable(v, line)) {
        out += (first ? "" : sep) + (attr ? to_str(item_attribute(x, to_str(*attr))) : py_str(x));
        first = false;
      }
      return Value(Json(out));
    }
    if (f == "items") {
      if (v.undefined) return Value(Json::array());
      if (!j.is_object()) fail(line, "items of a non-mapping");
      return method(v, "items", a, line);
    }
    if (f == "list") return Value(iterable(v, line));
    if (f == "reverse") {
      if (j.is_string()) {
        auto cps = code_points(j.get<std::string>());
        std::string out;
        for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
        return Value(Json(out));
      }
      Json items = iterable(v, line);
      std::reverse(items.begin(), items.end());
      return Value(std::move(items));
    }
    if (f == "replace") {
      if (a.pos.size() < 2) fail(line, "replace needs two arguments");
      const Value* n = a.get(2, "count");
      const int64_t count = n ? as_int(*n, line, "count") : -1;
      return Value(Json(replaced(to_str(v), to_str(a.pos[0]), to_str(a.pos[1]), count, line)));
    }
    if (f == "int") {
      if (is_int(j)) return Value(Json(as_int(v, line, "value")));
      if (j.is_number_float()) return Value(Json(int64_t(j.get<double>())));
      try {
        return Value(Json(int64_t(std::stoll(strip(to_str(v), true, true, std::nullopt)))));
      } catch (const std::exception&) {
        const Value* d = a.get(0, "default");
        return d ? *d : Value(Json(int64_t(0)));
      }
    }
    if (f == "float") {
      if (j.is_number() || j.is_boolean()) return Value(Json(as_number(v, line)));
      try {
        return Value(Json(std::stod(to_str(v))));
      } catch (const std::exception&) {
        return Value(Json(0.0));
      }
    }
    if (f == "abs") {
      if (is_int(j)) return Value(Json(std::llabs(as_int(v, line, "value"))));
      return Value(Json(std::fabs(as_number(v, line))));
    }
    if (f == "round") {
      const Value* p = a.get(0, "precision");
      const double scale = std::pow(10.0, p ? double(as_int(*p, line, "precision")) : 0.0);
      return Value(Json(std::round(as_number(v, line) * scale) / scale));
    }
    if (f == "selectattr" || f == "rejectattr") {
      if (a.pos.empty()) fail(line, f + " needs an attribute name");
      const std::string attr = to_str(a.pos[0]);
      Json out = Json::array();
      for (const Json& x : iterable(v, line)) {
        const Value got = item_attribute(x, attr);
        bool pass;
        if (a.pos.size() > 1) {
          std::vector<Value> targs(a.pos.begin() + 2, a.pos.end());
          pass = run_test(to_str(a.pos[1]), got, targs, line);
        } else {
          pass = truthy(got);
        }
        if (pass == (f == "selectattr")) out.push_back(x);
      }
      return Value(std::move(out));
    }
    if (f == "select" || f == "reject") {  // items passing a test (or truthy)
      Json out = Json::array();
      for (const Json& x : iterable(v, line)) {
        bool pass;
        if (!a.pos.empty()) {
          std::vector<Value> targs(a.pos.begin() + 1, a.pos.end());
          pass = run_test(to_str(a.pos[0]), Value(x), targs, line);
        } else {
          pass = truthy(Value(x));
        }
        if (pass == (f == "select")) out.push_back(x);
      }
      return Value(std::move(out));
    }
    if (f == "map") {
      Json out = Json::array();
      auto attr = a.kw.find("attribute");
      for (const Json& x : iterable(v, line)) {
        if (attr != a.kw.end()) {
          Value got = item_attribute(x, to_str(attr->second));
          if (got.undefined && a.kw.count("default")) got = a.kw.at("default");
          out.push_back(got.j);
        } else {
          if (a.pos.empty()) fail(line, "map needs a filter name or attribute=");
          Args rest;
          rest.pos.assign(a.pos.begin() + 1, a.pos.end());
          out.push_back(apply_filter(to_str(a.pos[0]), Value(x), rest, line).j);
        }
      }
      return Value(std::move(out));
    }
    if (f == "unique") {
      Json out = Json::array();
      for (const Json& x : iterable(v, line))
        if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
      return Value(std::move(out));
    }
    if (f == "sort") {
      Json items = iterable(v, line);
      const Value* rev = a.get(0, "reverse");
      const Value* attr = a.get(2, "attribute");
      std::vector<Json> xs(items.begin(), items.end());
      auto key = [&](const Json& x) { return attr ? item_attribute(x, to_str(*attr)) : Value(x); };
      std::stable_sort(xs.begin(), xs.end(), [&](const Json& p, const Json& q) { return less(key(p), key(q), line); });
      if (rev && truthy(*rev)) std::reverse(xs.begin(), xs.end());
      return Value(Json(xs));
    }
    if (f == "indent") {
      const Value* w = a.get(0, "width");
      const Value* first = a.get(1, "first");
      const std::string pad(size_t(w ? as_int(*w, line, "width") : 4), ' ');
      const std::string s = to_str(v);
      std::string out = first && truthy(*first) ? pad : "";
      for (size_t i = 0; i < s.size(); ++i) {
        out += s[i];
        if (s[i] == '\n' && i + 1 < s.size() && s[i + 1] != '\n') out += pad;
      }
      return Value(Json(out));
    }
    fail(line, fmt::format("unknown filter '{}'", f));
  }

  bool test(const Expr& e) {
    Value held;
    const Value& v = subject(*e.kids[0], held);
    Args a = arguments(e, 1);
    return run_test(e.name, v, a.pos, e.line);
  }

  static bool run_test(const std::string& t, const Value& v, const std::vector<Value>& args, int line) {
    const Json& j = v.j;
    auto arg = [&]() -> const Value& {
      if (args.empty()) fail(line, fmt::format("test '{}' needs an argument", t));
      return args[0];
    };
    if (t == "defined") return !v.undefined;
    if (t == "undefined") return v.undefined;
    if (v.undefined && t != "none") {
      if (t == "iterable" || t == "mapping" || t == "string" || t == "number" || t == "sequence" || t == "boolean" ||
          t == "integer" || t == "float" || t == "true" || t == "false" || t == "callable")
        return false;
    }
    if (t == "none") return !v.undefined && j.is_null();
    if (t == "string") return j.is_string();
    if (t == "number") return j.is_number();
    if (t == "integer") return j.is_number_integer() || j.is_number_unsigned();
    if (t == "float") return j.is_number_float();
    if (t == "boolean") return j.is_boolean();
    if (t == "true") return j.is_boolean() && j.get<bool>();
    if (t == "false") return j.is_boolean() && !j.get<bool>();
    if (t == "mapping") return j.is_object();
    if (t == "iterable") return j.is_array() || j.is_object() || j.is_string();
    if (t == "sequence") return j.is_array() || j.is_object() || j.is_string();
    if (t == "callable") return v.macro != nullptr;
    if (t == "odd" || t == "even") {
      const int64_t n = as_int(v, line, "the value");
      return (n % 2 != 0) == (t == "odd");
    }
    if (t == "divisibleby") {
      const int64_t d = as_int(arg(), line, "divisibleby's argument");
      if (d == 0) fail(line, "divisibleby 0");
      return as_int(v, line, "the value") % d == 0;
    }
    if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return equal(v, arg());
    if (t == "ne" || t == "!=") return !equal(v, arg());
    if (t == "lower" || t == "upper") {
      const std::string s = to_str(v);
      int (*to)(int) = t == "lower" ? [](int c) { return std::tolower(c); } : +[](int c) { return std::toupper(c); };
      return s == ascii_map(s, to);
    }
    if (t == "in") return contains(arg(), v, line);
    fail(line, fmt::format("unknown test '{}'", t));
  }

  const JinjaLimits limits_;
  std::vector<Frame> frames_;
  std::string out_;
  int64_t steps_ = 0;
};

}  // namespace

JinjaTemplate::JinjaTemplate(const std::string& source) : program_(std::make_unique<Program>()) {
  std::string text = source;  // Jinja drops one trailing newline (keep_trailing_newline is off)
  if (text.size() >= 2 && text.compare(text.size() - 2, 2, "\r\n") == 0)
    text.resize(text.size() - 2);
  else if (!text.empty() && text.back() == '\n')
    text.pop_back();
  program_->body = TemplateParser(lex(text)).parse();
}

JinjaTemplate::~JinjaTemplate() = default;
JinjaTemplate::JinjaTemplate(JinjaTemplate&&) noexcept = default;
JinjaTemplate& JinjaTemplate::operator=(JinjaTemplate&&) noexcept = default;

std::string JinjaTemplate::render(const Json& variables, const JinjaLimits& limits) const {
  return Renderer(variables, limits).run(program_->body);
}

}  // namespace moec
