// Typed, validated Dockerfile instructions, made from the parser's AST.
//
// ParseDockerfile() turns each instruction node into a typed command,
// checks its flags and arguments the way BuildKit v0.10 does (flag names
// and values, argument counts, JSON/shell forms, heredocs), and groups
// commands into stages with the global ARGs that precede the first FROM.
// Nothing is expanded here: commands keep the text as written, and
// ExpandCommand() later substitutes variables in exactly the fields Docker
// expands, with the expander the converter supplies (the converter knows
// which variables are in scope at each step).
//
// Errors are kInvalidArgument with BuildKit's wording, and carry the
// instruction's line range in `*where` for FormatSourceError() (parser.h).
//
// Called by the converter. Thread-safety: pure functions.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "frontend/dockerfile/parser/parser.h"
#include "util/status.h"

namespace kiln::dockerfile {

struct KeyValue {
  std::string key;
  std::string value;
};

// ARG NAME[=default]: `value` is nullopt when there is no default.
struct ArgSpec {
  std::string key;
  std::optional<std::string> value;
};

// Fields every command has.
struct CommandBase {
  std::string keyword;   // lower-case, as in the AST ("run", "copy", ...)
  std::string original;  // the logical source line, for history and messages
  SourceRange location;
};

// A command line that is either JSON (exec form) or a shell string.
struct CmdLine {
  std::vector<std::string> args;  // exec form: the words; shell form: one string
  bool prepend_shell = false;     // shell form: run with the stage's SHELL
};

// A heredoc body a command carries (RUN <<EOF, COPY <<EOF /dst).
struct HeredocFile {
  std::string name;    // the delimiter (file name for COPY/ADD)
  std::string data;    // the body, chomped already when the `<<-` form was used
  bool expand = true;  // variables in `data` are expanded (unquoted delimiter)
  bool chomp = false;  // the `<<-` form was used (`data` is already chomped)
};

// A --mount=... of RUN, parsed and validated (after expansion). Defaults are
// filled in as BuildKit's converter does: cache_id is the target when id= is
// absent; a secret's id (secret_or_ssh_id) is source=, else id=, else the
// target's base name, and its target defaults to /run/secrets/<id>; an ssh
// mount's id defaults to "default" and its target stays empty (the converter
// numbers the agent sockets /run/buildkit/ssh_agent.<n>). `mode`, `uid` and
// `gid` stay unset unless given (only cache, secret and ssh accept them).
enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class CacheSharing { kShared, kPrivate, kLocked };
struct Mount {
  MountType type = MountType::kBind;
  std::string from;       // stage name, image ref or named context; empty: the build context
  std::string source;     // path inside `from`
  std::string target;     // path in the container (required except secret/ssh)
  bool read_only = true;  // bind defaults to read-only, cache/tmpfs to read-write
  std::string cache_id;   // cache: defaults to the target
  CacheSharing sharing = CacheSharing::kShared;
  std::optional<long long> size_bytes;  // tmpfs size=
  std::string secret_or_ssh_id;         // secret/ssh id=
  bool required = false;                // secret/ssh required=
  std::optional<unsigned> mode;         // octal mode=
  std::optional<unsigned> uid;
  std::optional<unsigned> gid;
};

struct FromCommand : CommandBase {
  std::string base_name;   // as written (ARGs expanded by the converter)
  std::string stage_name;  // `AS name`, lower-cased; empty when absent
  std::string platform;    // --platform value as written; empty when absent
};
struct RunCommand : CommandBase {
  CmdLine cmd;
  std::vector<HeredocFile> files;        // heredocs, in order
  std::vector<std::string> mount_flags;  // raw --mount values, parsed by ParseMount
  std::string network;                   // --network: "", "default", "none", "host"
  std::string security;                  // --security: "", "sandbox", "insecure"
  // The --mount values parsed after expansion, in order. Empty until
  // ExpandCommand() (or ExpandMounts()) has run; ParseDockerfile() only
  // checks their syntax, as BuildKit does before the stage's variables are
  // known.
  std::vector<Mount> mounts;
};
struct CmdCommand : CommandBase {
  CmdLine cmd;
  std::vector<HeredocFile> files;
};
struct EntrypointCommand : CommandBase {
  CmdLine cmd;
};
struct EnvCommand : CommandBase {
  std::vector<KeyValue> env;
};
struct ArgCommand : CommandBase {
  std::vector<ArgSpec> args;
};
struct LabelCommand : CommandBase {
  std::vector<KeyValue> labels;
};
struct MaintainerCommand : CommandBase {
  std::string maintainer;
};
struct ExposeCommand : CommandBase {
  std::vector<std::string> ports;
};
struct VolumeCommand : CommandBase {
  std::vector<std::string> volumes;
};
struct UserCommand : CommandBase {
  std::string user;
};
struct WorkdirCommand : CommandBase {
  std::string path;
};
// COPY and ADD share this shape; ADD-only fields stay empty for COPY.
struct CopyCommand : CommandBase {
  bool is_add = false;
  std::vector<std::string> sources;  // as written; URLs allowed for ADD
  std::string dest;
  std::vector<HeredocFile> files;  // COPY <<EOF /dst: inline sources
  std::string from;                // --from (COPY only)
  std::string chown;               // --chown
  std::string chmod;               // --chmod (octal, validated on expansion)
  // --chmod as a number: set while parsing when written without variables,
  // else by ExpandCommand(); nullopt when --chmod is absent.
  std::optional<unsigned> chmod_mode;
  bool link = false;          // --link
  std::string checksum;       // ADD --checksum=sha256:...
  bool keep_git_dir = false;  // ADD --keep-git-dir
};
struct ShellCommand : CommandBase {
  std::vector<std::string> shell;
};
struct StopSignalCommand : CommandBase {
  std::string signal;
};
struct HealthcheckCommand : CommandBase {
  // Test: {"NONE"}, {"CMD", args...} or {"CMD-SHELL", command}.
  std::vector<std::string> test;
  long long interval_ns = 0;
  long long timeout_ns = 0;
  long long start_period_ns = 0;
  int retries = 0;
};
struct OnbuildCommand : CommandBase {
  std::string expression;  // the nested instruction's source text, e.g. "RUN make"
};

using Command = std::variant<FromCommand, RunCommand, CmdCommand, EntrypointCommand, EnvCommand,
                             ArgCommand, LabelCommand, MaintainerCommand, ExposeCommand,
                             VolumeCommand, UserCommand, WorkdirCommand, CopyCommand, ShellCommand,
                             StopSignalCommand, HealthcheckCommand, OnbuildCommand>;

struct Stage {
  std::string name;  // lower-cased `AS` name; empty when unnamed
  FromCommand from;
  std::vector<Command> commands;  // after FROM, in order
};

struct Dockerfile {
  std::vector<ArgCommand> meta_args;  // ARGs before the first FROM
  std::vector<Stage> stages;
  Directives directives;
  std::vector<Warning> warnings;
};

// The whole Dockerfile: parse + typed commands. Errors: the parser's, an
// instruction before the first FROM other than ARG, an unknown instruction,
// a bad flag or argument (BuildKit's wording), with `*where` set.
Result<Dockerfile> ParseDockerfile(std::string_view text, SourceRange* where = nullptr);

// One instruction node (also used for ONBUILD triggers and their
// `expression`, which the converter parses with ParseInstructionText).
Result<Command> ParseInstruction(const Node& node, SourceRange* where = nullptr);
Result<Command> ParseInstructionText(std::string_view line, SourceRange* where = nullptr);

// Substitutes variables in the fields Docker expands for this command
// (ENV/ARG/LABEL keys and values, COPY/ADD sources, dest, --chown, --chmod,
// --from, ADD --checksum, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL,
// ONBUILD: no). CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left alone (the
// shell or the image user expands them); for RUN only the --mount values are
// expanded, field by field, and parsed into `mounts` (ExpandMounts). After
// expansion COPY/ADD's --chmod is parsed into `chmod_mode` and ADD
// --checksum is checked (one http(s) source). Heredoc bodies are not touched
// here. `expand_word` is called once per word; `expand_words` only for
// EXPOSE, whose ports BuildKit splits (VOLUME entries stay one word each, as
// in BuildKit v0.10). Errors from the expander are returned unchanged; the
// caller adds the location (Base(command).location).
using WordExpander = std::function<Result<std::string>(std::string_view)>;
using WordsExpander = std::function<Result<std::vector<std::string>>(std::string_view)>;
Status ExpandCommand(Command& command, const WordExpander& expand_word,
                     const WordsExpander& expand_words);

// Parses one --mount value after expansion. Errors name the bad key or value.
Result<Mount> ParseMount(std::string_view value);
// As BuildKit does at dispatch: splits the value into its comma-separated
// fields first, then expands each field's value with `expand_value` before
// checking it (so a variable's value cannot add fields).
Result<Mount> ParseMount(std::string_view value, const WordExpander& expand_value);
// Fills `run.mounts` from `run.mount_flags` with ParseMount(value, expand_word).
// ExpandCommand() calls it for RUN.
Status ExpandMounts(RunCommand& run, const WordExpander& expand_word);

// The keyword/location of any command.
const CommandBase& Base(const Command& command);

}  // namespace kiln::dockerfile
