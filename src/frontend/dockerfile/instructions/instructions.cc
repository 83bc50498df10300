// Typed instructions from the parser's AST, after BuildKit v0.10's
// frontend/dockerfile/instructions/parse.go: the same argument counts, flag
// sets, defaults and error texts, instruction by instruction.

#include "frontend/dockerfile/instructions/instructions.h"

#include <algorithm>
#include <array>
#include <utility>

#include "frontend/dockerfile/instructions/internal.h"
#include "util/strings.h"

namespace kiln::dockerfile {

namespace {

using internal::AsciiUpper;
using internal::FlagSet;
using internal::TrimSpace;

Status Invalid(std::string message) { return Status::InvalidArgument(std::move(message)); }

Status AtLeastOneArgument(std::string_view command) {
  return Invalid(std::string(command) + " requires at least one argument");
}
Status ExactlyOneArgument(std::string_view command) {
  return Invalid(std::string(command) + " requires exactly one argument");
}
Status NoDestinationArgument(std::string_view command) {
  return Invalid(std::string(command) +
                 " requires at least two arguments, but only one was provided. Destination "
                 "could not be determined");
}
Status BlankNames(std::string_view command) {
  return Invalid(std::string(command) + " names can not be blank");
}
Status TooManyArguments(std::string_view command) {
  return Invalid("Bad input to " + std::string(command) + ", too many arguments");
}

// The instruction keywords, for "did you mean" (a fixed order keeps the
// suggestion deterministic where BuildKit walked a map).
constexpr std::array<std::string_view, 18> kInstructions = {
    "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
    "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
    "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};

// The arguments as BuildKit's nodeArgs() flattens them: an ONBUILD
// argument contributes its nested instruction's keyword and arguments.
void CollectArgs(const Node& node, std::vector<std::string>* out) {
  for (const Node& arg : node.args) {
    if (arg.children.empty()) {
      out->push_back(arg.value);
    } else if (arg.children.size() == 1) {
      out->push_back(arg.children[0].value);
      CollectArgs(arg.children[0], out);
    }
  }
}

// One instruction being parsed (BuildKit's parseRequest).
struct Request {
  explicit Request(const Node& n) : node(n), flags(n.flags) { CollectArgs(n, &args); }

  template <typename T>
  T Make() const {
    T command;
    command.keyword = util::AsciiLower(node.value);
    command.original = TrimSpace(node.original);
    command.location = SourceRange{node.start_line, node.end_line};
    return command;
  }

  const Node& node;
  std::vector<std::string> args;
  FlagSet flags;
};

// BuildKit's handleJSONArgs: exec form keeps the words, shell form is one
// string.
CmdLine MakeCmdLine(const std::vector<std::string>& args, bool json_form) {
  CmdLine cmd;
  cmd.prepend_shell = !json_form;
  if (args.empty()) return cmd;
  if (json_form) {
    cmd.args = args;
    return cmd;
  }
  std::string joined;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) joined.push_back(' ');
    joined += args[i];
  }
  cmd.args.push_back(std::move(joined));
  return cmd;
}

std::vector<HeredocFile> InlineFiles(const Node& node) {
  std::vector<HeredocFile> files;
  for (const Heredoc& heredoc : node.heredocs) {
    HeredocFile file;
    file.name = heredoc.name;
    file.data = heredoc.chomp ? internal::ChompHeredocContent(heredoc.content) : heredoc.content;
    file.expand = heredoc.expand;
    file.chomp = heredoc.chomp;
    files.push_back(std::move(file));
  }
  return files;
}

Result<std::vector<KeyValue>> ParseKeyValues(const std::vector<std::string>& args,
                                             std::string_view command) {
  if (args.empty()) return AtLeastOneArgument(command);
  if (args.size() % 2 != 0) return TooManyArguments(command);  // the parser pairs them
  std::vector<KeyValue> out;
  for (size_t i = 0; i < args.size(); i += 2) {
    if (args[i].empty()) return BlankNames(command);
    out.push_back(KeyValue{args[i], args[i + 1]});
  }
  return out;
}

bool IsHttpSource(std::string_view src) {
  return src.starts_with("http://") || src.starts_with("https://");
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// go-digest's Parse/Validate, with its error texts.
Status ValidateChecksum(std::string_view digest) {
  const Status bad_format = Invalid("invalid checksum digest format");
  const size_t colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == digest.size()) {
    return bad_format;
  }
  const std::string_view algorithm = digest.substr(0, colon);
  const std::string_view encoded = digest.substr(colon + 1);
  size_t size = 0;
  if (algorithm == "sha256") size = 32;
  if (algorithm == "sha384") size = 48;
  if (algorithm == "sha512") size = 64;
  if (size == 0) {
    // An unknown algorithm is "unsupported" only when the digest is well
    // formed: [a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+
    bool ok = true;
    bool after_separator = true;
    for (char c : algorithm) {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      const bool separator = c == '.' || c == '+' || c == '_' || c == '-';
      if (alnum) {
        after_separator = false;
      } else if (separator && !after_separator) {
        after_separator = true;
      } else {
        ok = false;
      }
    }
    ok = ok && !after_separator;
    for (char c : encoded) {
      const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '=' || c == '_' || c == '-';
      ok = ok && allowed;
    }
    return ok ? Invalid("unsupported digest algorithm") : bad_format;
  }
  if (encoded.size() != size * 2) return Invalid("invalid checksum digest length");
  if (!IsLowerHex(encoded)) return bad_format;
  return Status::Ok();
}

// ADD --checksum needs exactly one source, an http(s) URL. Before
// expansion a source holding a variable is not judged yet.
Status CheckChecksumSources(const CopyCommand& c, bool expanded) {
  if (c.checksum.empty()) return Status::Ok();
  if (c.sources.size() != 1) return Invalid("checksum can't be specified for multiple sources");
  const std::string& src = c.sources.front();
  if (!expanded && src.find('$') != std::string::npos) return Status::Ok();
  if (!IsHttpSource(src)) return Invalid("checksum can't be specified for non-HTTP(S) sources");
  return Status::Ok();
}

Result<std::optional<unsigned>> ParseChmod(std::string_view chmod) {
  if (chmod.empty()) return std::optional<unsigned>();
  const std::optional<std::uint64_t> mode = internal::ParseGoUint32(chmod, 8);
  if (!mode) {
    return Invalid("Bad input to --chmod, expected an octal mode such as 0755, got " +
                   GoQuote(chmod));
  }
  return std::optional<unsigned>(static_cast<unsigned>(*mode));
}

// ---------------------------------------------------------------------------
// One function per instruction.

Result<Command> ParseEnv(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  KILN_ASSIGN_OR_RETURN(auto env, ParseKeyValues(req.args, "ENV"));
  auto c = req.Make<EnvCommand>();
  c.env = std::move(env);
  return Command(std::move(c));
}

Result<Command> ParseMaintainer(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("MAINTAINER");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<MaintainerCommand>();
  c.maintainer = req.args[0];
  return Command(std::move(c));
}

Result<Command> ParseLabel(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  KILN_ASSIGN_OR_RETURN(auto labels, ParseKeyValues(req.args, "LABEL"));
  auto c = req.Make<LabelCommand>();
  c.labels = std::move(labels);
  return Command(std::move(c));
}

// COPY and ADD: the last argument is the destination; `<<EOF` sources are
// inline files whose bodies the node carries.
Status ParseSourcesAndDest(const Request& req, std::string_view command, CopyCommand* c) {
  const std::string& dest = req.args.back();
  if (internal::ParseHeredocWord(dest)) {
    return Invalid(std::string(command) + " cannot accept a heredoc as a destination");
  }
  c->dest = dest;
  for (size_t i = 0; i + 1 < req.args.size(); ++i) {
    const std::string& src = req.args[i];
    const std::optional<internal::HeredocWord> word = internal::ParseHeredocWord(src);
    if (!word) {
      c->sources.push_back(src);
      continue;
    }
    HeredocFile file;
    file.name = word->name;
    file.expand = word->expand;
    file.chomp = word->chomp;
    for (const Heredoc& heredoc : req.node.heredocs) {
      if (heredoc.name == word->name) {
        file.data = heredoc.content;  // the last of equal names wins, as in BuildKit
      }
    }
    if (file.chomp) file.data = internal::ChompHeredocContent(file.data);
    c->files.push_back(std::move(file));
  }
  return Status::Ok();
}

Result<Command> ParseCopy(Request& req, bool is_add) {
  const std::string_view name = is_add ? "ADD" : "COPY";
  if (req.args.size() < 2) return NoDestinationArgument(name);
  req.flags.AddString("chown", "");
  req.flags.AddString("chmod", "");
  req.flags.AddBool("link", false);
  if (is_add) {
    req.flags.AddBool("keep-git-dir", false);
    req.flags.AddString("checksum", "");
  } else {
    req.flags.AddString("from", "");
  }
  KILN_RETURN_IF_ERROR(req.flags.Parse());

  auto c = req.Make<CopyCommand>();
  c.is_add = is_add;
  KILN_RETURN_IF_ERROR(ParseSourcesAndDest(req, name, &c));
  c.chown = req.flags.Value("chown");
  c.chmod = req.flags.Value("chmod");
  c.link = req.flags.IsTrue("link");
  if (is_add) {
    c.keep_git_dir = req.flags.IsTrue("keep-git-dir");
    c.checksum = req.flags.Value("checksum");
    if (!c.checksum.empty() && c.checksum.find('$') == std::string::npos) {
      KILN_RETURN_IF_ERROR(ValidateChecksum(c.checksum));
    }
    KILN_RETURN_IF_ERROR(CheckChecksumSources(c, /*expanded=*/false));
  } else {
    c.from = req.flags.Value("from");
  }
  if (c.chmod.find('$') == std::string::npos) {
    KILN_ASSIGN_OR_RETURN(c.chmod_mode, ParseChmod(c.chmod));
  }
  return Command(std::move(c));
}

bool IsValidStageName(std::string_view name) {
  if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

Result<Command> ParseFrom(Request& req) {
  std::string stage_name;
  if (req.args.size() == 3 && util::AsciiLower(req.args[1]) == "as") {
    stage_name = util::AsciiLower(req.args[2]);
    if (!IsValidStageName(stage_name)) {
      return Invalid("invalid name for build stage: " + GoQuote(req.args[2]) +
                     ", name can't start with a number or contain symbols");
    }
  } else if (req.args.size() != 1) {
    return Invalid("FROM requires either one or three arguments");
  }
  req.flags.AddString("platform", "");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<FromCommand>();
  c.base_name = req.args[0];
  c.stage_name = std::move(stage_name);
  c.platform = req.flags.Value("platform");
  return Command(std::move(c));
}

// `original` without its leading "ONBUILD" keyword (case-insensitive).
std::string StripOnbuildKeyword(std::string_view original) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
  };
  size_t i = 0;
  while (i < original.size() && is_space(original[i])) ++i;
  if (util::AsciiLower(original.substr(i, 7)) != "onbuild") return std::string(original);
  i += 7;
  while (i < original.size() && is_space(original[i])) ++i;
  return std::string(original.substr(i));
}

Result<Command> ParseOnbuild(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("ONBUILD");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  const std::string trigger = AsciiUpper(TrimSpace(req.args[0]));
  if (trigger == "ONBUILD") {
    return Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  }
  if (trigger == "MAINTAINER" || trigger == "FROM") {
    return Invalid(trigger + " isn't allowed as an ONBUILD trigger");
  }
  auto c = req.Make<OnbuildCommand>();
  c.expression = StripOnbuildKeyword(req.node.original);
  // Heredoc bodies travel inside the trigger text, as BuildKit stores them.
  const std::vector<Heredoc>* heredocs = &req.node.heredocs;
  if (heredocs->empty() && req.node.args.size() == 1 && req.node.args[0].children.size() == 1) {
    heredocs = &req.node.args[0].children[0].heredocs;
  }
  for (const Heredoc& heredoc : *heredocs) {
    c.expression += "\n" + heredoc.content + heredoc.name;
  }
  return Command(std::move(c));
}

Result<Command> ParseWorkdir(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("WORKDIR");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<WorkdirCommand>();
  c.path = req.args[0];
  return Command(std::move(c));
}

Result<Command> ParseRun(Request& req) {
  req.flags.AddStrings("mount");
  req.flags.AddString("network", "default");
  req.flags.AddString("security", "sandbox");
  KILN_RETURN_IF_ERROR(req.flags.Parse());

  auto c = req.Make<RunCommand>();
  c.cmd = MakeCmdLine(req.args, req.node.json_form);
  c.files = InlineFiles(req.node);
  c.mount_flags = req.flags.Values("mount");
  for (const std::string& mount : c.mount_flags) {
    KILN_RETURN_IF_ERROR(internal::CheckMountSyntax(mount));
  }
  const std::string& network = req.flags.Value("network");
  if (network != "default" && network != "none" && network != "host") {
    return Invalid("invalid network mode " + GoQuote(network));
  }
  const std::string& security = req.flags.Value("security");
  if (security != "sandbox" && security != "insecure") {
    return Invalid("security " + GoQuote(security) + " is not valid");
  }
  if (req.flags.Used("network")) c.network = network;
  if (req.flags.Used("security")) c.security = security;
  return Command(std::move(c));
}

Result<Command> ParseCmd(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<CmdCommand>();
  c.cmd = MakeCmdLine(req.args, req.node.json_form);
  c.files = InlineFiles(req.node);
  return Command(std::move(c));
}

Result<Command> ParseEntrypoint(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<EntrypointCommand>();
  c.cmd = MakeCmdLine(req.args, req.node.json_form);
  return Command(std::move(c));
}

// A HEALTHCHECK duration flag: empty is 0 (inherit); otherwise Go duration
// syntax and at least 1ms.
Result<long long> ParseInterval(const FlagSet& flags, std::string_view name) {
  const std::string& value = flags.Value(name);
  if (value.empty()) return 0LL;
  KILN_ASSIGN_OR_RETURN(const std::int64_t ns, internal::ParseGoDuration(value));
  if (ns < 1000 * 1000) {
    return Invalid("Interval " + GoQuote(name) + " cannot be less than 1ms");
  }
  return static_cast<long long>(ns);
}

Result<Command> ParseHealthcheck(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("HEALTHCHECK");
  auto c = req.Make<HealthcheckCommand>();
  std::string type = AsciiUpper(req.args[0]);
  const std::vector<std::string> rest(req.args.begin() + 1, req.args.end());
  if (type == "NONE") {
    // Flags are not looked at, as in BuildKit.
    if (!rest.empty()) return Invalid("HEALTHCHECK NONE takes no arguments");
    c.test = {type};
    return Command(std::move(c));
  }
  req.flags.AddString("interval", "");
  req.flags.AddString("timeout", "");
  req.flags.AddString("start-period", "");
  req.flags.AddString("retries", "");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  if (type != "CMD") {
    return Invalid("Unknown type " + GoQuote(type) + " in HEALTHCHECK (try CMD)");
  }
  const CmdLine cmd = MakeCmdLine(rest, req.node.json_form);
  if (cmd.args.empty()) return Invalid("Missing command after HEALTHCHECK CMD");
  if (!req.node.json_form) type = "CMD-SHELL";
  c.test.push_back(type);
  c.test.insert(c.test.end(), cmd.args.begin(), cmd.args.end());
  KILN_ASSIGN_OR_RETURN(c.interval_ns, ParseInterval(req.flags, "interval"));
  KILN_ASSIGN_OR_RETURN(c.timeout_ns, ParseInterval(req.flags, "timeout"));
  KILN_ASSIGN_OR_RETURN(c.start_period_ns, ParseInterval(req.flags, "start-period"));
  const std::string& retries = req.flags.Value("retries");
  if (!retries.empty()) {
    KILN_ASSIGN_OR_RETURN(const std::int64_t n, internal::ParseGoInt32(retries));
    if (n < 1) return Invalid("--retries must be at least 1 (not " + std::to_string(n) + ")");
    c.retries = static_cast<int>(n);
  }
  return Command(std::move(c));
}

Result<Command> ParseExpose(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("EXPOSE");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<ExposeCommand>();
  c.ports = req.args;
  std::sort(c.ports.begin(), c.ports.end());  // BuildKit sorts them as written
  return Command(std::move(c));
}

Result<Command> ParseUser(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("USER");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<UserCommand>();
  c.user = req.args[0];
  return Command(std::move(c));
}

Result<Command> ParseVolume(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("VOLUME");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  auto c = req.Make<VolumeCommand>();
  for (const std::string& arg : req.args) {
    std::string volume = TrimSpace(arg);
    if (volume.empty()) return Invalid("VOLUME specified can not be an empty string");
    c.volumes.push_back(std::move(volume));
  }
  return Command(std::move(c));
}

Result<Command> ParseStopSignal(Request& req) {
  // BuildKit does not look at STOPSIGNAL's flags; the signal is checked by
  // the converter after expansion.
  if (req.args.size() != 1) return ExactlyOneArgument("STOPSIGNAL");
  auto c = req.Make<StopSignalCommand>();
  c.signal = req.args[0];
  return Command(std::move(c));
}

Result<Command> ParseArg(Request& req) {
  // ARG's flags are not looked at, as in BuildKit.
  if (req.args.empty()) return AtLeastOneArgument("ARG");
  auto c = req.Make<ArgCommand>();
  for (const std::string& arg : req.args) {
    ArgSpec spec;
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
      spec.key = arg;
    } else {
      if (eq == 0) return BlankNames("ARG");
      spec.key = arg.substr(0, eq);
      spec.value = arg.substr(eq + 1);
    }
    c.args.push_back(std::move(spec));
  }
  return Command(std::move(c));
}

// "SHELL requires the arguments to be in JSON form", with BuildKit's hint
// for Windows paths whose backslashes were not escaped.
Status NotJson(std::string_view command, std::string_view original) {
  std::string extra;
  bool drive_path = false;  // "c:\ after a quote
  for (size_t i = 0; i + 3 < original.size(); ++i) {
    const char letter = original[i + 1];
    if (original[i] == '"' &&
        ((letter >= 'a' && letter <= 'z') || (letter >= 'A' && letter <= 'Z')) &&
        original[i + 2] == ':' && original[i + 3] == '\\') {
      drive_path = true;
    }
  }
  if (drive_path && original.find("\\\\") == std::string_view::npos &&
      original.find('[') != std::string_view::npos &&
      original.find(']') != std::string_view::npos) {
    extra = ". It looks like '" + std::string(original) +
            "' includes a file path without an escaped back-slash. JSON requires back-slashes "
            "to be escaped such as [\"c:\\\\path\\\\to\\\\file.exe\", \"/parameter\"]";
  }
  return Invalid(std::string(command) + " requires the arguments to be in JSON form" + extra);
}

Result<Command> ParseShell(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  const CmdLine cmd = MakeCmdLine(req.args, req.node.json_form);
  if (cmd.args.empty()) return AtLeastOneArgument("SHELL");
  if (!req.node.json_form) return NotJson("SHELL", req.node.original);
  auto c = req.Make<ShellCommand>();
  c.shell = cmd.args;
  return Command(std::move(c));
}

Result<Command> Dispatch(Request& req) {
  const std::string keyword = util::AsciiLower(req.node.value);
  if (keyword == "env") return ParseEnv(req);
  if (keyword == "maintainer") return ParseMaintainer(req);
  if (keyword == "label") return ParseLabel(req);
  if (keyword == "add") return ParseCopy(req, /*is_add=*/true);
  if (keyword == "copy") return ParseCopy(req, /*is_add=*/false);
  if (keyword == "from") return ParseFrom(req);
  if (keyword == "onbuild") return ParseOnbuild(req);
  if (keyword == "workdir") return ParseWorkdir(req);
  if (keyword == "run") return ParseRun(req);
  if (keyword == "cmd") return ParseCmd(req);
  if (keyword == "healthcheck") return ParseHealthcheck(req);
  if (keyword == "entrypoint") return ParseEntrypoint(req);
  if (keyword == "expose") return ParseExpose(req);
  if (keyword == "user") return ParseUser(req);
  if (keyword == "volume") return ParseVolume(req);
  if (keyword == "stopsignal") return ParseStopSignal(req);
  if (keyword == "arg") return ParseArg(req);
  if (keyword == "shell") return ParseShell(req);
  const std::vector<std::string_view> names(kInstructions.begin(), kInstructions.end());
  return Invalid(internal::WithSuggestion("unknown instruction: " + AsciiUpper(req.node.value),
                                          req.node.value, names, /*case_sensitive=*/false));
}

// ---------------------------------------------------------------------------
// Expansion

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

Status ExpandInPlace(std::string& word, const WordExpander& expand) {
  auto expanded = expand(word);
  if (!expanded.ok()) return expanded.status();
  word = std::move(expanded).value();
  return Status::Ok();
}

}  // namespace

Result<Command> ParseInstruction(const Node& node, SourceRange* where) {
  Request req(node);
  Result<Command> command = Dispatch(req);
  if (!command.ok() && where != nullptr) *where = SourceRange{node.start_line, node.end_line};
  return command;
}

Result<Command> ParseInstructionText(std::string_view line, SourceRange* where) {
  SourceRange parse_where;
  auto parsed = Parse(line, &parse_where);
  if (!parsed.ok()) {
    if (where != nullptr) *where = parse_where;
    return parsed.status();
  }
  if (parsed->root.children.size() != 1) {
    if (where != nullptr) *where = SourceRange{parsed->root.start_line, parsed->root.end_line};
    return Invalid("onbuild trigger should be a single expression");
  }
  return ParseInstruction(parsed->root.children.front(), where);
}

Result<Dockerfile> ParseDockerfile(std::string_view text, SourceRange* where) {
  SourceRange parse_where;
  auto parsed = Parse(text, &parse_where);
  if (!parsed.ok()) {
    if (where != nullptr) *where = parse_where;
    return parsed.status();
  }
  Dockerfile dockerfile;
  dockerfile.directives = parsed->directives;
  dockerfile.warnings = std::move(parsed->warnings);
  for (const Node& node : parsed->root.children) {
    const SourceRange location{node.start_line, node.end_line};
    auto fail = [&](Status status) {
      if (where != nullptr) *where = location;
      return status;
    };
    KILN_ASSIGN_OR_RETURN(Command command, ParseInstruction(node, where));
    if (dockerfile.stages.empty()) {
      if (auto* arg = std::get_if<ArgCommand>(&command)) {
        dockerfile.meta_args.push_back(std::move(*arg));
        continue;
      }
    }
    if (auto* from = std::get_if<FromCommand>(&command)) {
      if (!from->stage_name.empty()) {
        for (const Stage& stage : dockerfile.stages) {
          if (stage.name == from->stage_name) {
            return fail(Invalid("Duplicate stage name " + GoQuote(from->stage_name) +
                                ", stage names should be unique"));
          }
        }
      }
      Stage stage;
      stage.name = from->stage_name;
      stage.from = std::move(*from);
      dockerfile.stages.push_back(std::move(stage));
      continue;
    }
    if (dockerfile.stages.empty()) return fail(Invalid("no build stage in current context"));
    dockerfile.stages.back().commands.push_back(std::move(command));
  }
  return dockerfile;
}

Status ExpandCommand(Command& command, const WordExpander& expand_word,
                     const WordsExpander& expand_words) {
  auto expand = [&](std::string& word) { return ExpandInPlace(word, expand_word); };
  auto expand_pairs = [&](std::vector<KeyValue>& pairs) {
    for (KeyValue& kv : pairs) {
      KILN_RETURN_IF_ERROR(expand(kv.key));
      KILN_RETURN_IF_ERROR(expand(kv.value));
    }
    return Status::Ok();
  };
  return std::visit(Overloaded{
                        [&](EnvCommand& c) { return expand_pairs(c.env); },
                        [&](LabelCommand& c) { return expand_pairs(c.labels); },
                        [&](ArgCommand& c) {
                          for (ArgSpec& arg : c.args) {
                            KILN_RETURN_IF_ERROR(expand(arg.key));
                            if (arg.value) KILN_RETURN_IF_ERROR(expand(*arg.value));
                          }
                          return Status::Ok();
                        },
                        [&](CopyCommand& c) {
                          for (std::string& src : c.sources) KILN_RETURN_IF_ERROR(expand(src));
                          KILN_RETURN_IF_ERROR(expand(c.dest));
                          KILN_RETURN_IF_ERROR(expand(c.chown));
                          KILN_RETURN_IF_ERROR(expand(c.chmod));
                          KILN_RETURN_IF_ERROR(expand(c.from));
                          KILN_RETURN_IF_ERROR(expand(c.checksum));
                          KILN_ASSIGN_OR_RETURN(c.chmod_mode, ParseChmod(c.chmod));
                          if (!c.checksum.empty())
                            KILN_RETURN_IF_ERROR(ValidateChecksum(c.checksum));
                          return CheckChecksumSources(c, /*expanded=*/true);
                        },
                        [&](ExposeCommand& c) {
                          std::vector<std::string> ports;
                          for (const std::string& port : c.ports) {
                            KILN_ASSIGN_OR_RETURN(std::vector<std::string> words,
                                                  expand_words(port));
                            ports.insert(ports.end(), words.begin(), words.end());
                          }
                          c.ports = std::move(ports);
                          return Status::Ok();
                        },
                        [&](VolumeCommand& c) {
                          for (std::string& volume : c.volumes)
                            KILN_RETURN_IF_ERROR(expand(volume));
                          return Status::Ok();
                        },
                        [&](UserCommand& c) { return expand(c.user); },
                        [&](WorkdirCommand& c) { return expand(c.path); },
                        [&](StopSignalCommand& c) { return expand(c.signal); },
                        [&](RunCommand& c) { return ExpandMounts(c, expand_word); },
                        [&](auto&) { return Status::Ok(); },
                    },
                    command);
}

const CommandBase& Base(const Command& command) {
  return std::visit([](const auto& c) -> const CommandBase& { return c; }, command);
}

}  // namespace kiln::dockerfile
