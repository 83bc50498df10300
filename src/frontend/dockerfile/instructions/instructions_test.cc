#include "frontend/dockerfile/instructions/instructions.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "frontend/dockerfile/instructions/internal.h"

namespace kiln::dockerfile {
namespace {

using internal::ParseGoDuration;

// ---------------------------------------------------------------------------
// Helpers

// The single instruction of `line`, parsed; fails the test on error.
template <typename T>
T One(std::string_view line) {
  SourceRange where;
  auto command = ParseInstructionText(line, &where);
  EXPECT_TRUE(command.ok()) << line << ": " << command.status().ToString();
  if (!command.ok()) return T{};
  const T* typed = std::get_if<T>(&*command);
  EXPECT_NE(typed, nullptr) << line;
  return typed != nullptr ? *typed : T{};
}

// The error message of parsing one instruction (empty when it parsed).
std::string InstrError(std::string_view line) {
  auto command = ParseInstructionText(line);
  if (command.ok()) return "";
  EXPECT_EQ(command.status().code(), StatusCode::kInvalidArgument);
  return command.status().message();
}

struct FileError {
  std::string message;
  SourceRange where;
};
FileError DockerfileError(std::string_view text) {
  SourceRange where;
  auto parsed = ParseDockerfile(text, &where);
  if (parsed.ok()) return {"", {}};
  return {parsed.status().message(), where};
}

Dockerfile MustParse(std::string_view text) {
  auto parsed = ParseDockerfile(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? std::move(parsed).value() : Dockerfile{};
}

template <typename T>
const T& At(const Stage& stage, size_t i) {
  return std::get<T>(stage.commands.at(i));
}

Mount MustMount(std::string_view value) {
  auto mount = ParseMount(value);
  EXPECT_TRUE(mount.ok()) << value << ": " << mount.status().ToString();
  return mount.ok() ? *mount : Mount{};
}

std::string MountError(std::string_view value) {
  auto mount = ParseMount(value);
  return mount.ok() ? "" : mount.status().message();
}

// A toy expander: "$NAME" / "${NAME}" replaced from a map (unset -> ""),
// "$FAIL" is an error; the words expander splits the result on spaces.
class ToyEnv {
 public:
  ToyEnv(std::initializer_list<std::pair<const std::string, std::string>> vars) : vars_(vars) {}

  Result<std::string> Word(std::string_view word) const {
    std::string out;
    for (size_t i = 0; i < word.size(); ++i) {
      if (word[i] != '$') {
        out.push_back(word[i]);
        continue;
      }
      size_t start = i + 1;
      bool braced = start < word.size() && word[start] == '{';
      if (braced) ++start;
      size_t end = start;
      while (end < word.size() &&
             (std::isalnum(static_cast<unsigned char>(word[end])) || word[end] == '_')) {
        ++end;
      }
      const std::string name(word.substr(start, end - start));
      if (name == "FAIL") return Status::InvalidArgument("FAIL: is not set");
      auto it = vars_.find(name);
      if (it != vars_.end()) out += it->second;
      i = braced ? end : end - 1;
      ++calls_;
    }
    return out;
  }

  Result<std::vector<std::string>> Words(std::string_view word) const {
    KILN_ASSIGN_OR_RETURN(std::string expanded, Word(word));
    std::vector<std::string> out;
    std::istringstream in(expanded);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  }

  Status Expand(Command& command) const {
    return ExpandCommand(
        command, [this](std::string_view w) { return Word(w); },
        [this](std::string_view w) { return Words(w); });
  }

  int calls() const { return calls_; }

 private:
  std::map<std::string, std::string> vars_;
  mutable int calls_ = 0;
};

// ---------------------------------------------------------------------------
// Stages, meta args, locations

TEST(ParseDockerfile, StagesAndMetaArgs) {
  const Dockerfile df = MustParse(
      "# syntax=docker/dockerfile:1.4\n"
      "ARG BASE=alpine\n"
      "ARG TAG\n"
      "FROM $BASE:$TAG AS Build\n"
      "RUN make\n"
      "ARG INNER=1\n"
      "FROM --platform=$BUILDPLATFORM build\n"
      "COPY --from=build /out /out\n");
  ASSERT_EQ(df.meta_args.size(), 2u);
  EXPECT_EQ(df.meta_args[0].args[0].key, "BASE");
  EXPECT_EQ(df.meta_args[0].args[0].value, "alpine");
  EXPECT_EQ(df.meta_args[1].args[0].key, "TAG");
  EXPECT_FALSE(df.meta_args[1].args[0].value.has_value());
  EXPECT_EQ(df.directives.syntax, "docker/dockerfile:1.4");
  ASSERT_EQ(df.stages.size(), 2u);
  EXPECT_EQ(df.stages[0].name, "build");  // lower-cased
  EXPECT_EQ(df.stages[0].from.base_name, "$BASE:$TAG");
  EXPECT_EQ(df.stages[0].from.stage_name, "build");
  EXPECT_EQ(df.stages[0].from.original, "FROM $BASE:$TAG AS Build");
  EXPECT_EQ(df.stages[0].from.location.start_line, 4);
  ASSERT_EQ(df.stages[0].commands.size(), 2u);
  EXPECT_EQ(At<ArgCommand>(df.stages[0], 1).args[0].key, "INNER");  // a stage ARG, not meta
  EXPECT_EQ(df.stages[1].name, "");
  EXPECT_EQ(df.stages[1].from.platform, "$BUILDPLATFORM");
  EXPECT_EQ(df.stages[1].from.base_name, "build");
  EXPECT_EQ(At<CopyCommand>(df.stages[1], 0).from, "build");
}

TEST(ParseDockerfile, InstructionBeforeFrom) {
  FileError e = DockerfileError("ARG A\n\nRUN echo\nFROM x\n");
  EXPECT_EQ(e.message, "no build stage in current context");
  EXPECT_EQ(e.where.start_line, 3);
  EXPECT_EQ(e.where.end_line, 3);
}

TEST(ParseDockerfile, DuplicateStageNames) {
  FileError e = DockerfileError("FROM a AS one\nFROM b AS two\nFROM c AS ONE\n");
  EXPECT_EQ(e.message, "Duplicate stage name \"one\", stage names should be unique");
  EXPECT_EQ(e.where.start_line, 3);
  // Unnamed stages may repeat.
  EXPECT_EQ(MustParse("FROM a\nFROM a\n").stages.size(), 2u);
}

TEST(ParseDockerfile, ErrorLocationSpansContinuationLines) {
  FileError e = DockerfileError("FROM a\nRUN --network=bridge \\\n  echo hi\n");
  EXPECT_EQ(e.message, "invalid network mode \"bridge\"");
  EXPECT_EQ(e.where.start_line, 2);
  EXPECT_EQ(e.where.end_line, 3);
}

TEST(ParseDockerfile, ParserErrorsKeepTheirLocation) {
  SourceRange where;
  auto parsed = ParseDockerfile("# only a comment\n", &where);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "file with no instructions");
}

TEST(ParseDockerfile, FormatSourceErrorOfABadLine) {
  const std::string text = "FROM alpine\nRUN echo hi\nHEALTHCHECK --retries=0 CMD true\n";
  SourceRange where;
  auto parsed = ParseDockerfile(text, &where);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "--retries must be at least 1 (not 0)");
  EXPECT_EQ(where.start_line, 3);
  const Status formatted = FormatSourceError(parsed.status(), where, "Dockerfile", text);
  EXPECT_EQ(formatted.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(formatted.message(),
            "Dockerfile:3: --retries must be at least 1 (not 0)\n"
            " 3 | HEALTHCHECK --retries=0 CMD true\n"
            "   | ^");
}

TEST(ParseDockerfile, FormatSourceErrorOfAContinuedLine) {
  const std::string text =
      "FROM alpine\n"
      "RUN --mount=type=cache,from=$BASE,target=/x \\\n"
      "    make\n";
  SourceRange where;
  auto parsed = ParseDockerfile(text, &where);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(FormatSourceError(parsed.status(), where, "Dockerfile", text).message(),
            "Dockerfile:2: 'from' doesn't support variable expansion, define alias stage "
            "instead\n"
            " 2 | RUN --mount=type=cache,from=$BASE,target=/x \\\n"
            "   | ^\n"
            " 3 |     make");
}

TEST(ParseDockerfile, WarningsAndDirectivesPassThrough) {
  const Dockerfile df = MustParse("# escape=`\nFROM a\nRUN echo `\n\n  hi\n");
  EXPECT_EQ(df.directives.escape, '`');
  EXPECT_FALSE(df.warnings.empty());
}

TEST(Base, KeywordOriginalLocation) {
  const Dockerfile df = MustParse("FROM a\n\nrun  echo \\\n  hi  \n");
  const CommandBase& base = Base(df.stages[0].commands[0]);
  EXPECT_EQ(base.keyword, "run");
  EXPECT_EQ(base.location.start_line, 3);
  EXPECT_EQ(base.location.end_line, 4);
  EXPECT_EQ(base.original.rfind("run  echo", 0), 0u) << base.original;
}

// ---------------------------------------------------------------------------
// Unknown instructions and flags

TEST(ParseInstruction, UnknownInstruction) {
  FileError e = DockerfileError("FROM a\nRUNN echo\n");
  EXPECT_EQ(e.message, "unknown instruction: RUNN (did you mean run?)");
  EXPECT_EQ(e.where.start_line, 2);
  EXPECT_EQ(InstrError("XYZ foo"), "unknown instruction: XYZ");
  EXPECT_EQ(InstrError("cpy a b"), "unknown instruction: CPY (did you mean copy?)");
}

TEST(ParseInstruction, UnknownAndDuplicateFlags) {
  EXPECT_EQ(InstrError("RUN --foo=bar echo"), "Unknown flag: foo");
  EXPECT_EQ(InstrError("ENV --x=1 A=B"), "Unknown flag: x");
  EXPECT_EQ(InstrError("COPY --chown=1 --chown=2 a b"), "Duplicate flag specified: chown");
  EXPECT_EQ(InstrError("COPY --chown a b"), "Missing a value on flag: chown");
  EXPECT_EQ(InstrError("RUN --mount echo"), "Missing a value on flag: mount");
  EXPECT_EQ(InstrError("FROM --platform=a --platform=b x"), "Duplicate flag specified: platform");
  EXPECT_EQ(InstrError("FROM --foo x"), "Unknown flag: foo");
}

// ---------------------------------------------------------------------------
// FROM

TEST(From, Forms) {
  FromCommand f = One<FromCommand>("FROM --platform=linux/arm64 alpine:3.19 as Base-1.x_y");
  EXPECT_EQ(f.base_name, "alpine:3.19");
  EXPECT_EQ(f.stage_name, "base-1.x_y");
  EXPECT_EQ(f.platform, "linux/arm64");
  EXPECT_EQ(f.keyword, "from");
  EXPECT_EQ(One<FromCommand>("FROM scratch").stage_name, "");
}

TEST(From, Errors) {
  EXPECT_EQ(InstrError("FROM a b"), "FROM requires either one or three arguments");
  EXPECT_EQ(InstrError("FROM a AS b c"), "FROM requires either one or three arguments");
  EXPECT_EQ(InstrError("FROM a FOR b"), "FROM requires either one or three arguments");
  EXPECT_EQ(InstrError("FROM a AS 1st"),
            "invalid name for build stage: \"1st\", name can't start with a number or contain "
            "symbols");
  EXPECT_EQ(InstrError("FROM a AS We$rd"),
            "invalid name for build stage: \"We$rd\", name can't start with a number or contain "
            "symbols");
}

// ---------------------------------------------------------------------------
// ENV, LABEL, ARG, MAINTAINER

TEST(Env, Forms) {
  EnvCommand e = One<EnvCommand>("ENV a=1 b=\"two words\" c=");
  ASSERT_EQ(e.env.size(), 3u);
  EXPECT_EQ(e.env[0].key, "a");
  EXPECT_EQ(e.env[0].value, "1");
  EXPECT_EQ(e.env[1].key, "b");
  EXPECT_EQ(e.env[2].value, "");
  EnvCommand old = One<EnvCommand>("ENV a b c");
  ASSERT_EQ(old.env.size(), 1u);
  EXPECT_EQ(old.env[0].key, "a");
  EXPECT_EQ(old.env[0].value, "b c");
}

TEST(Env, Errors) {
  EXPECT_EQ(InstrError("ENV"), "ENV requires at least one argument");
  EXPECT_EQ(InstrError("ENV a"), "ENV must have two arguments");
}

TEST(Label, Forms) {
  LabelCommand l = One<LabelCommand>("LABEL version=1.0 \"org.x\"=\"a b\"");
  ASSERT_EQ(l.labels.size(), 2u);
  EXPECT_EQ(l.labels[0].key, "version");
  EXPECT_EQ(l.labels[1].value, "\"a b\"");  // quotes go at expansion
  EXPECT_EQ(InstrError("LABEL"), "LABEL requires at least one argument");
  EXPECT_EQ(InstrError("LABEL --x=1 a=b"), "Unknown flag: x");
}

TEST(Arg, Forms) {
  ArgCommand a = One<ArgCommand>("ARG A=1 B C= D=x=y");
  ASSERT_EQ(a.args.size(), 4u);
  EXPECT_EQ(a.args[0].key, "A");
  EXPECT_EQ(a.args[0].value, "1");
  EXPECT_FALSE(a.args[1].value.has_value());
  EXPECT_EQ(a.args[2].value, "");
  EXPECT_EQ(a.args[3].key, "D");
  EXPECT_EQ(a.args[3].value, "x=y");
}

TEST(Arg, Errors) {
  EXPECT_EQ(InstrError("ARG"), "ARG requires at least one argument");
  EXPECT_EQ(InstrError("ARG =x"), "ARG names can not be blank");
}

TEST(Maintainer, Forms) {
  EXPECT_EQ(One<MaintainerCommand>("MAINTAINER Jane Doe <jane@example.com>").maintainer,
            "Jane Doe <jane@example.com>");
  EXPECT_EQ(InstrError("MAINTAINER"), "MAINTAINER requires exactly one argument");
}

// ---------------------------------------------------------------------------
// EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, SHELL

TEST(Expose, SortedAsWritten) {
  ExposeCommand e = One<ExposeCommand>("EXPOSE 8080 443/tcp 80 $PORT");
  EXPECT_EQ(e.ports, (std::vector<std::string>{"$PORT", "443/tcp", "80", "8080"}));
  EXPECT_EQ(InstrError("EXPOSE"), "EXPOSE requires at least one argument");
}

TEST(Volume, Forms) {
  EXPECT_EQ(One<VolumeCommand>("VOLUME /a /b").volumes, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(One<VolumeCommand>("VOLUME [\"/a\", \" /b \"]").volumes,
            (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(InstrError("VOLUME [\"/a\", \"\"]"), "VOLUME specified can not be an empty string");
  EXPECT_EQ(InstrError("VOLUME"), "VOLUME requires at least one argument");
}

TEST(User, Forms) {
  EXPECT_EQ(One<UserCommand>("USER app:app").user, "app:app");
  EXPECT_EQ(InstrError("USER"), "USER requires exactly one argument");
  EXPECT_EQ(InstrError("USER --x=1 app"), "Unknown flag: x");
}

TEST(Workdir, Forms) {
  EXPECT_EQ(One<WorkdirCommand>("WORKDIR /src/$APP").path, "/src/$APP");
  EXPECT_EQ(InstrError("WORKDIR"), "WORKDIR requires exactly one argument");
}

TEST(StopSignal, Forms) {
  EXPECT_EQ(One<StopSignalCommand>("STOPSIGNAL SIGKILL").signal, "SIGKILL");
  EXPECT_EQ(InstrError("STOPSIGNAL"), "STOPSIGNAL requires exactly one argument");
}

TEST(Shell, RequiresJson) {
  EXPECT_EQ(One<ShellCommand>("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]").shell,
            (std::vector<std::string>{"/bin/bash", "-o", "pipefail", "-c"}));
  EXPECT_EQ(InstrError("SHELL /bin/bash -c"), "SHELL requires the arguments to be in JSON form");
  EXPECT_EQ(InstrError("SHELL []"), "SHELL requires at least one argument");
}

// ---------------------------------------------------------------------------
// CMD, ENTRYPOINT, HEALTHCHECK

TEST(Cmd, ShellAndExecForms) {
  CmdCommand shell = One<CmdCommand>("CMD echo $HOME  \"x\"");
  EXPECT_TRUE(shell.cmd.prepend_shell);
  EXPECT_EQ(shell.cmd.args, (std::vector<std::string>{"echo $HOME  \"x\""}));
  CmdCommand exec = One<CmdCommand>("CMD [\"nginx\", \"-g\", \"daemon off;\"]");
  EXPECT_FALSE(exec.cmd.prepend_shell);
  EXPECT_EQ(exec.cmd.args, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(InstrError("CMD --x=1 echo"), "Unknown flag: x");
}

TEST(Entrypoint, Forms) {
  EntrypointCommand e = One<EntrypointCommand>("ENTRYPOINT [\"/entry.sh\"]");
  EXPECT_EQ(e.cmd.args, (std::vector<std::string>{"/entry.sh"}));
  EntrypointCommand empty = One<EntrypointCommand>("ENTRYPOINT []");
  EXPECT_TRUE(empty.cmd.args.empty());
  EXPECT_FALSE(empty.cmd.prepend_shell);
}

TEST(Healthcheck, CmdWithFlags) {
  HealthcheckCommand h = One<HealthcheckCommand>(
      "HEALTHCHECK --interval=1m30s --timeout=0.5s --start-period=2s --retries=3 "
      "CMD curl -f http://localhost/ || exit 1");
  EXPECT_EQ(h.test, (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}));
  EXPECT_EQ(h.interval_ns, 90LL * 1000 * 1000 * 1000);
  EXPECT_EQ(h.timeout_ns, 500LL * 1000 * 1000);
  EXPECT_EQ(h.start_period_ns, 2LL * 1000 * 1000 * 1000);
  EXPECT_EQ(h.retries, 3);
  HealthcheckCommand exec = One<HealthcheckCommand>("HEALTHCHECK cmd [\"/bin/check\", \"-q\"]");
  EXPECT_EQ(exec.test, (std::vector<std::string>{"CMD", "/bin/check", "-q"}));
  EXPECT_EQ(exec.interval_ns, 0);
  EXPECT_EQ(exec.retries, 0);
}

TEST(Healthcheck, None) {
  EXPECT_EQ(One<HealthcheckCommand>("HEALTHCHECK NONE").test, (std::vector<std::string>{"NONE"}));
  // BuildKit does not look at the flags of NONE.
  EXPECT_EQ(One<HealthcheckCommand>("HEALTHCHECK --bogus=1 none").test,
            (std::vector<std::string>{"NONE"}));
  EXPECT_EQ(InstrError("HEALTHCHECK NONE x"), "HEALTHCHECK NONE takes no arguments");
}

TEST(Healthcheck, Errors) {
  EXPECT_EQ(InstrError("HEALTHCHECK"), "HEALTHCHECK requires at least one argument");
  EXPECT_EQ(InstrError("HEALTHCHECK CMD"), "Missing command after HEALTHCHECK CMD");
  EXPECT_EQ(InstrError("HEALTHCHECK RUN true"), "Unknown type \"RUN\" in HEALTHCHECK (try CMD)");
  EXPECT_EQ(InstrError("HEALTHCHECK --foo=1 CMD true"), "Unknown flag: foo");
  EXPECT_EQ(InstrError("HEALTHCHECK --interval=0s CMD true"),
            "Interval \"interval\" cannot be less than 1ms");
  EXPECT_EQ(InstrError("HEALTHCHECK --timeout=-1s CMD true"),
            "Interval \"timeout\" cannot be less than 1ms");
  EXPECT_EQ(InstrError("HEALTHCHECK --start-period=999us CMD true"),
            "Interval \"start-period\" cannot be less than 1ms");
  EXPECT_EQ(InstrError("HEALTHCHECK --interval=10 CMD true"),
            "time: missing unit in duration \"10\"");
  EXPECT_EQ(InstrError("HEALTHCHECK --interval=1d CMD true"),
            "time: unknown unit \"d\" in duration \"1d\"");
  EXPECT_EQ(InstrError("HEALTHCHECK --timeout=soon CMD true"), "time: invalid duration \"soon\"");
  EXPECT_EQ(InstrError("HEALTHCHECK --retries=0 CMD true"), "--retries must be at least 1 (not 0)");
  EXPECT_EQ(InstrError("HEALTHCHECK --retries=-2 CMD true"),
            "--retries must be at least 1 (not -2)");
  EXPECT_EQ(InstrError("HEALTHCHECK --retries=x CMD true"),
            "strconv.ParseInt: parsing \"x\": invalid syntax");
  EXPECT_EQ(InstrError("HEALTHCHECK --retries=3000000000 CMD true"),
            "strconv.ParseInt: parsing \"3000000000\": value out of range");
  EXPECT_EQ(InstrError("HEALTHCHECK --interval CMD true"), "Missing a value on flag: interval");
}

// ---------------------------------------------------------------------------
// RUN

TEST(Run, Forms) {
  RunCommand shell = One<RunCommand>("RUN apt-get update && apt-get install -y curl");
  EXPECT_TRUE(shell.cmd.prepend_shell);
  EXPECT_EQ(shell.cmd.args,
            (std::vector<std::string>{"apt-get update && apt-get install -y curl"}));
  EXPECT_EQ(shell.network, "");
  EXPECT_EQ(shell.security, "");
  RunCommand exec = One<RunCommand>("RUN [\"make\", \"all\"]");
  EXPECT_FALSE(exec.cmd.prepend_shell);
  EXPECT_EQ(exec.cmd.args, (std::vector<std::string>{"make", "all"}));
}

TEST(Run, Flags) {
  RunCommand r = One<RunCommand>(
      "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm "
      "--network=none --security=insecure make");
  EXPECT_EQ(r.mount_flags,
            (std::vector<std::string>{"type=cache,target=/root/.cache", "type=secret,id=npm"}));
  EXPECT_TRUE(r.mounts.empty());  // parsed at expansion
  EXPECT_EQ(r.network, "none");
  EXPECT_EQ(r.security, "insecure");
  EXPECT_EQ(One<RunCommand>("RUN --network=host x").network, "host");
  EXPECT_EQ(One<RunCommand>("RUN --network=default x").network, "default");
  EXPECT_EQ(One<RunCommand>("RUN --security=sandbox x").security, "sandbox");
}

TEST(Run, FlagErrors) {
  EXPECT_EQ(InstrError("RUN --network=bridge x"), "invalid network mode \"bridge\"");
  EXPECT_EQ(InstrError("RUN --network= x"), "invalid network mode \"\"");
  EXPECT_EQ(InstrError("RUN --security=privileged x"), "security \"privileged\" is not valid");
  EXPECT_EQ(InstrError("RUN --network=host --network=none x"), "Duplicate flag specified: network");
  // The syntax of --mount is checked while parsing; keys and values wait for
  // expansion, as in BuildKit.
  EXPECT_EQ(InstrError("RUN --mount=type=cache,target x"),
            "invalid field 'target' must be a key=value pair");
  EXPECT_EQ(InstrError("RUN --mount=type=bind,from=$STAGE,target=/x x"),
            "'from' doesn't support variable expansion, define alias stage instead");
  EXPECT_EQ(InstrError("RUN --mount= x"), "failed to parse csv mounts: EOF");
  EXPECT_EQ(InstrError("RUN --mount=type=bogus,ro x"), "");  // judged at expansion
}

TEST(Run, Heredocs) {
  const Dockerfile df = MustParse(
      "FROM a\n"
      "RUN <<EOF\n"
      "echo $HOME\n"
      "EOF\n"
      "RUN <<-EOT bash\n"
      "\techo one\n"
      "\t\techo two\n"
      "\tEOT\n"
      "RUN python3 <<'PY'\n"
      "print('hi')\n"
      "PY\n");
  const RunCommand& simple = At<RunCommand>(df.stages[0], 0);
  EXPECT_EQ(simple.cmd.args, (std::vector<std::string>{"<<EOF"}));
  ASSERT_EQ(simple.files.size(), 1u);
  EXPECT_EQ(simple.files[0].name, "EOF");
  EXPECT_EQ(simple.files[0].data, "echo $HOME\n");
  EXPECT_TRUE(simple.files[0].expand);
  EXPECT_FALSE(simple.files[0].chomp);
  const RunCommand& chomped = At<RunCommand>(df.stages[0], 1);
  ASSERT_EQ(chomped.files.size(), 1u);
  EXPECT_EQ(chomped.files[0].data, "echo one\necho two\n");
  EXPECT_TRUE(chomped.files[0].chomp);
  const RunCommand& quoted = At<RunCommand>(df.stages[0], 2);
  ASSERT_EQ(quoted.files.size(), 1u);
  EXPECT_EQ(quoted.files[0].name, "PY");
  EXPECT_FALSE(quoted.files[0].expand);
  EXPECT_EQ(quoted.cmd.args, (std::vector<std::string>{"python3 <<'PY'"}));
}

// ---------------------------------------------------------------------------
// COPY and ADD

TEST(Copy, FlagsAndArgs) {
  CopyCommand c =
      One<CopyCommand>("COPY --from=build --chown=1000:1000 --chmod=0755 --link src1 src2 /dst/");
  EXPECT_FALSE(c.is_add);
  EXPECT_EQ(c.sources, (std::vector<std::string>{"src1", "src2"}));
  EXPECT_EQ(c.dest, "/dst/");
  EXPECT_EQ(c.from, "build");
  EXPECT_EQ(c.chown, "1000:1000");
  EXPECT_EQ(c.chmod, "0755");
  EXPECT_EQ(c.chmod_mode, 0755u);
  EXPECT_TRUE(c.link);
  EXPECT_FALSE(One<CopyCommand>("COPY a b").link);
  EXPECT_FALSE(One<CopyCommand>("COPY --link=false a b").link);
  EXPECT_TRUE(One<CopyCommand>("COPY --link=TRUE a b").link);
  CopyCommand json = One<CopyCommand>("COPY [\"a b\", \"/c d/\"]");
  EXPECT_EQ(json.sources, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(json.dest, "/c d/");
}

TEST(Copy, Errors) {
  EXPECT_EQ(InstrError("COPY a"),
            "COPY requires at least two arguments, but only one was provided. Destination could "
            "not be determined");
  EXPECT_EQ(InstrError("ADD a"),
            "ADD requires at least two arguments, but only one was provided. Destination could "
            "not be determined");
  EXPECT_EQ(InstrError("COPY --link= a b"), "Missing a value on flag: link");
  EXPECT_EQ(InstrError("COPY --link=yes a b"), "Expecting boolean value for flag link, not: yes");
  EXPECT_EQ(InstrError("COPY --chmod=0999 a b"),
            "Bad input to --chmod, expected an octal mode such as 0755, got \"0999\"");
  EXPECT_EQ(InstrError("COPY --checksum=sha256:x a b"), "Unknown flag: checksum");
  EXPECT_EQ(InstrError("COPY --keep-git-dir a b"), "Unknown flag: keep-git-dir");
  EXPECT_EQ(InstrError("ADD --from=x a b"), "Unknown flag: from");
  // A variable in --chmod is judged after expansion.
  EXPECT_EQ(One<CopyCommand>("COPY --chmod=$MODE a b").chmod_mode, std::nullopt);
}

TEST(Add, ChecksumAndKeepGitDir) {
  const std::string sum = "sha256:" + std::string(64, 'a');
  CopyCommand a = One<CopyCommand>("ADD --checksum=" + sum + " https://example.com/x.tgz /x");
  EXPECT_TRUE(a.is_add);
  EXPECT_EQ(a.checksum, sum);
  EXPECT_EQ(a.sources, (std::vector<std::string>{"https://example.com/x.tgz"}));
  CopyCommand git =
      One<CopyCommand>("ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.6 /s");
  EXPECT_TRUE(git.keep_git_dir);
  EXPECT_FALSE(One<CopyCommand>("ADD a b").keep_git_dir);
  EXPECT_EQ(InstrError("ADD --checksum=" + sum + " http://a/x http://a/y /d"),
            "checksum can't be specified for multiple sources");
  EXPECT_EQ(InstrError("ADD --checksum=" + sum + " ./local /d"),
            "checksum can't be specified for non-HTTP(S) sources");
  EXPECT_EQ(InstrError("ADD --checksum=md5:abc http://a/x /d"), "unsupported digest algorithm");
  EXPECT_EQ(InstrError("ADD --checksum=sha256:abc http://a/x /d"),
            "invalid checksum digest length");
  EXPECT_EQ(InstrError("ADD --checksum=abc http://a/x /d"), "invalid checksum digest format");
  EXPECT_EQ(InstrError("ADD --checksum=sha256:" + std::string(64, 'A') + " http://a/x /d"),
            "invalid checksum digest format");
  // The URL may come from a variable; judged after expansion.
  EXPECT_EQ(InstrError("ADD --checksum=" + sum + " $URL /d"), "");
}

TEST(Copy, Heredocs) {
  const Dockerfile df = MustParse(
      "FROM a\n"
      "COPY <<EOF /dest\n"
      "hello $NAME\n"
      "EOF\n"
      "COPY <<-'ONE' src <<TWO /multi/\n"
      "\tfirst\n"
      "\t\tsecond\n"
      "ONE\n"
      "\tkept\n"
      "TWO\n");
  const CopyCommand& c = At<CopyCommand>(df.stages[0], 0);
  EXPECT_TRUE(c.sources.empty());
  EXPECT_EQ(c.dest, "/dest");
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].name, "EOF");
  EXPECT_EQ(c.files[0].data, "hello $NAME\n");
  EXPECT_TRUE(c.files[0].expand);
  const CopyCommand& m = At<CopyCommand>(df.stages[0], 1);
  EXPECT_EQ(m.sources, (std::vector<std::string>{"src"}));
  ASSERT_EQ(m.files.size(), 2u);
  EXPECT_EQ(m.files[0].name, "ONE");
  EXPECT_EQ(m.files[0].data, "first\nsecond\n");  // <<- chomps leading tabs
  EXPECT_FALSE(m.files[0].expand);
  EXPECT_TRUE(m.files[0].chomp);
  EXPECT_EQ(m.files[1].name, "TWO");
  EXPECT_EQ(m.files[1].data, "\tkept\n");
  EXPECT_TRUE(m.files[1].expand);
}

TEST(Copy, HeredocAsDestination) {
  FileError e = DockerfileError("FROM a\nCOPY src <<EOF\nbody\nEOF\n");
  EXPECT_EQ(e.message, "COPY cannot accept a heredoc as a destination");
  EXPECT_EQ(e.where.start_line, 2);
}

// ---------------------------------------------------------------------------
// ONBUILD

TEST(Onbuild, Expression) {
  EXPECT_EQ(One<OnbuildCommand>("ONBUILD RUN make install").expression, "RUN make install");
  EXPECT_EQ(One<OnbuildCommand>("onbuild   copy --chown=1 a b").expression, "copy --chown=1 a b");
  auto trigger = ParseInstructionText(One<OnbuildCommand>("ONBUILD ADD . /app/src").expression);
  ASSERT_TRUE(trigger.ok());
  EXPECT_EQ(std::get<CopyCommand>(*trigger).dest, "/app/src");
}

TEST(Onbuild, Errors) {
  EXPECT_EQ(InstrError("ONBUILD ONBUILD RUN x"),
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  EXPECT_EQ(InstrError("ONBUILD FROM alpine"), "FROM isn't allowed as an ONBUILD trigger");
  EXPECT_EQ(InstrError("ONBUILD maintainer me"), "MAINTAINER isn't allowed as an ONBUILD trigger");
  auto two = ParseInstructionText("RUN a\nRUN b\n");
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(two.status().message(), "onbuild trigger should be a single expression");
}

TEST(Onbuild, HeredocTravelsInTheExpression) {
  const Dockerfile df = MustParse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
  EXPECT_EQ(At<OnbuildCommand>(df.stages[0], 0).expression, "RUN <<EOF\necho hi\nEOF");
  auto trigger = ParseInstructionText(At<OnbuildCommand>(df.stages[0], 0).expression);
  ASSERT_TRUE(trigger.ok()) << trigger.status().ToString();
  ASSERT_EQ(std::get<RunCommand>(*trigger).files.size(), 1u);
  EXPECT_EQ(std::get<RunCommand>(*trigger).files[0].data, "echo hi\n");
}

// ---------------------------------------------------------------------------
// Instructions whose flags BuildKit never looks at, and nodes built by hand

TEST(ParseInstruction, FlagsIgnoredWhereBuildKitIgnoresThem) {
  EXPECT_EQ(One<ArgCommand>("ARG --foo=1 X").args[0].key, "X");
  EXPECT_EQ(One<StopSignalCommand>("STOPSIGNAL --foo 9").signal, "9");
}

TEST(ParseInstruction, FromAHandBuiltNode) {
  Node node;
  node.value = "copy";
  node.original = "COPY --from=x a /b";
  node.flags = {"--from=x"};
  node.start_line = 7;
  node.end_line = 8;
  node.args.resize(2);
  node.args[0].value = "a";
  node.args[1].value = "/b";
  auto command = ParseInstruction(node);
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  const CopyCommand& copy = std::get<CopyCommand>(*command);
  EXPECT_EQ(copy.from, "x");
  EXPECT_EQ(copy.location.start_line, 7);
  EXPECT_EQ(copy.location.end_line, 8);

  node.flags = {"--form=x"};
  SourceRange where;
  auto bad = ParseInstruction(node, &where);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "Unknown flag: form");
  EXPECT_EQ(where.start_line, 7);
  EXPECT_EQ(where.end_line, 8);
}

TEST(Add, Heredoc) {
  const Dockerfile df = MustParse("FROM a\nADD <<EOF /etc/motd\nhi\nEOF\n");
  const CopyCommand& add = At<CopyCommand>(df.stages[0], 0);
  EXPECT_TRUE(add.is_add);
  ASSERT_EQ(add.files.size(), 1u);
  EXPECT_EQ(add.files[0].data, "hi\n");
  EXPECT_EQ(add.dest, "/etc/motd");
}

TEST(Shell, WindowsPathHint) {
  EXPECT_EQ(InstrError("SHELL [\"c:\\windows\\cmd.exe\", \"/S\"]"),
            "SHELL requires the arguments to be in JSON form. It looks like 'SHELL "
            "[\"c:\\windows\\cmd.exe\", \"/S\"]' includes a file path without an escaped "
            "back-slash. JSON requires back-slashes to be escaped such as "
            "[\"c:\\\\path\\\\to\\\\file.exe\", \"/parameter\"]");
}

// ---------------------------------------------------------------------------
// --mount

TEST(Mount, BindDefaults) {
  Mount m = MustMount("target=/src");
  EXPECT_EQ(m.type, MountType::kBind);
  EXPECT_EQ(m.target, "/src");
  EXPECT_TRUE(m.read_only);
  EXPECT_EQ(m.from, "");
  Mount rw = MustMount("type=bind,from=build,source=/out,dst=/in,rw");
  EXPECT_EQ(rw.from, "build");
  EXPECT_EQ(rw.source, "/out");
  EXPECT_EQ(rw.target, "/in");
  EXPECT_FALSE(rw.read_only);
  EXPECT_FALSE(MustMount("type=BIND,src=a,destination=/b,readwrite=true").read_only);
  EXPECT_FALSE(MustMount("target=/b,readonly=false").read_only);
  EXPECT_TRUE(MustMount("target=/b,rw=0").read_only);
}

TEST(Mount, CacheDefaults) {
  Mount m = MustMount("type=cache,target=/root/.cache/go-build");
  EXPECT_EQ(m.type, MountType::kCache);
  EXPECT_FALSE(m.read_only);
  EXPECT_EQ(m.cache_id, "/root/.cache/go-build");  // the target by default
  EXPECT_EQ(m.sharing, CacheSharing::kShared);
  Mount full = MustMount(
      "type=cache,id=gomod,target=/go/pkg/mod,sharing=LOCKED,from=base,source=/c,mode=0700,"
      "uid=1000,gid=100,ro");
  EXPECT_EQ(full.cache_id, "gomod");
  EXPECT_EQ(full.sharing, CacheSharing::kLocked);
  EXPECT_EQ(full.mode, 0700u);
  EXPECT_EQ(full.uid, 1000u);
  EXPECT_EQ(full.gid, 100u);
  EXPECT_TRUE(full.read_only);
  EXPECT_EQ(MustMount("type=cache,target=/x,sharing=private").sharing, CacheSharing::kPrivate);
}

TEST(Mount, TmpfsSize) {
  Mount m = MustMount("type=tmpfs,target=/tmp,size=10m");
  EXPECT_EQ(m.type, MountType::kTmpfs);
  EXPECT_FALSE(m.read_only);
  EXPECT_EQ(m.size_bytes, 10LL * 1024 * 1024);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=1.5GiB").size_bytes, 1610612736LL);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=512").size_bytes, 512);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t").size_bytes, std::nullopt);
}

TEST(Mount, SecretDefaults) {
  Mount m = MustMount("type=secret,id=aws");
  EXPECT_EQ(m.type, MountType::kSecret);
  EXPECT_EQ(m.secret_or_ssh_id, "aws");
  EXPECT_EQ(m.target, "/run/secrets/aws");
  EXPECT_TRUE(m.read_only);
  EXPECT_FALSE(m.required);
  EXPECT_EQ(MustMount("type=secret,target=/etc/npmrc").secret_or_ssh_id, "npmrc");
  EXPECT_EQ(MustMount("type=secret,source=token,id=ignored").secret_or_ssh_id, "token");
  Mount req = MustMount("type=secret,id=k,required,mode=0440,uid=1,gid=2,dst=/k");
  EXPECT_TRUE(req.required);
  EXPECT_EQ(req.target, "/k");
  EXPECT_EQ(req.mode, 0440u);
  EXPECT_FALSE(MustMount("type=secret,id=k,required=false").required);
}

TEST(Mount, SshDefaults) {
  Mount m = MustMount("type=ssh");
  EXPECT_EQ(m.type, MountType::kSsh);
  EXPECT_EQ(m.secret_or_ssh_id, "default");
  EXPECT_EQ(m.target, "");  // numbered by the converter
  EXPECT_TRUE(m.read_only);
  Mount gh = MustMount("type=ssh,id=github,required=true,target=/ssh.sock,mode=0600");
  EXPECT_EQ(gh.secret_or_ssh_id, "github");
  EXPECT_TRUE(gh.required);
  EXPECT_EQ(gh.target, "/ssh.sock");
  EXPECT_EQ(gh.mode, 0600u);
}

TEST(Mount, Errors) {
  EXPECT_EQ(MountError("type=foo,target=/x"), "unsupported mount type \"foo\"");
  EXPECT_EQ(MountError("type=cahce,target=/x"),
            "unsupported mount type \"cahce\" (did you mean cache?)");
  EXPECT_EQ(MountError("target=/x,color=red"), "unexpected key 'color' in 'color=red'");
  EXPECT_EQ(MountError("target=/x,Foo=bar"),
            "unexpected key 'foo' in 'Foo=bar' (did you mean from?)");
  EXPECT_EQ(MountError("tagret=/x"),
            "unexpected key 'tagret' in 'tagret=/x' (did you mean target?)");
  EXPECT_EQ(MountError("target=/x,sharing=locked"), "invalid cache sharing set for bind mount");
  EXPECT_EQ(MountError("type=cache,target=/x,sharing=all"), "unsupported sharing value \"all\"");
  EXPECT_EQ(MountError("type=cache,target=/x,sharing=share"),
            "unsupported sharing value \"share\" (did you mean shared?)");
  EXPECT_EQ(MountError("target=/x,mode=0755"), "mode not allowed for \"bind\" type mounts");
  EXPECT_EQ(MountError("type=tmpfs,target=/x,uid=1"), "uid not allowed for \"tmpfs\" type mounts");
  EXPECT_EQ(MountError("target=/x,gid=1"), "gid not allowed for \"bind\" type mounts");
  EXPECT_EQ(MountError("type=cache,target=/x,mode=0999"), "invalid value 0999 for mode");
  EXPECT_EQ(MountError("type=cache,target=/x,uid=-1"), "invalid value -1 for uid");
  EXPECT_EQ(MountError("type=cache,target=/x,gid=4294967296"), "invalid value 4294967296 for gid");
  EXPECT_EQ(MountError("target=/x,ro=maybe"), "invalid value for ro: maybe");
  EXPECT_EQ(MountError("target=/x,required"), "unexpected key 'required' for mount type 'bind'");
  EXPECT_EQ(MountError("type=cache,target=/x,required=true"),
            "unexpected key 'required' for mount type 'cache'");
  EXPECT_EQ(MountError("required,type=secret,id=x"),
            "unexpected key 'required' for mount type 'bind'");  // order matters, as in BuildKit
  EXPECT_EQ(MountError("type=secret,id=x,required=maybe"), "invalid value for required: maybe");
  EXPECT_EQ(MountError("type=tmpfs,target=/t,size=10x"), "invalid value for size: 10x");
  EXPECT_EQ(MountError("type=cache,target=/t,size=10m"),
            "unexpected key 'size' for mount type 'cache'");
  EXPECT_EQ(MountError("type=secret"), "one of source, target required");
  EXPECT_EQ(MountError("type=secret,id=a,from=x"), "secret mount should not have a from");
  EXPECT_EQ(MountError("type=secret,id=a,sharing=shared"),
            "secret mount should not define sharing");
  EXPECT_EQ(MountError("type=ssh,source=/a"), "ssh does not support source");
  EXPECT_EQ(MountError("type=cache"), "mount type \"cache\" requires a target (target=<path>)");
  EXPECT_EQ(MountError("type=bind,source=a"),
            "mount type \"bind\" requires a target (target=<path>)");
  EXPECT_EQ(MountError("type=cache,target"), "invalid field 'target' must be a key=value pair");
  EXPECT_EQ(MountError(""), "failed to parse csv mounts: EOF");
  EXPECT_EQ(MountError("target=/x,\"a\"b"),
            "failed to parse csv mounts: parse error on line 1, column 13: extraneous or missing "
            "\" in quoted-field");
}

TEST(Mount, CsvQuoting) {
  EXPECT_EQ(MustMount("\"target=/a,b\",type=tmpfs").target, "/a,b");
  EXPECT_EQ(MustMount("type=tmpfs,\"target=/a\"\"b\"").target, "/a\"b");
  EXPECT_EQ(MountError("target=\"/a\""),  // only a whole field may be quoted
            "failed to parse csv mounts: parse error on line 1, column 8: bare \" in "
            "non-quoted-field");
}

TEST(Mount, ExpandsEachValue) {
  ToyEnv env({{"T", "/cache"}, {"ID", "my,id"}, {"TYPE", "cache"}});
  auto m =
      ParseMount("type=$TYPE,target=$T,id=$ID", [&](std::string_view w) { return env.Word(w); });
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->type, MountType::kCache);
  EXPECT_EQ(m->target, "/cache");
  EXPECT_EQ(m->cache_id, "my,id");  // a comma in a value adds no field
  auto bad = ParseMount("target=$FAIL", [&](std::string_view w) { return env.Word(w); });
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "FAIL: is not set");
}

// ---------------------------------------------------------------------------
// ExpandCommand

TEST(Expand, EnvArgLabel) {
  ToyEnv env({{"A", "1"}, {"NAME", "web"}});
  Command e = One<EnvCommand>("ENV K_$A=$NAME other=${A}x");
  ASSERT_TRUE(env.Expand(e).ok());
  const auto& kv = std::get<EnvCommand>(e).env;
  EXPECT_EQ(kv[0].key, "K_1");
  EXPECT_EQ(kv[0].value, "web");
  EXPECT_EQ(kv[1].value, "1x");
  Command a = One<ArgCommand>("ARG X=$NAME Y");
  ASSERT_TRUE(env.Expand(a).ok());
  EXPECT_EQ(std::get<ArgCommand>(a).args[0].value, "web");
  EXPECT_FALSE(std::get<ArgCommand>(a).args[1].value.has_value());
  Command l = One<LabelCommand>("LABEL app=$NAME");
  ASSERT_TRUE(env.Expand(l).ok());
  EXPECT_EQ(std::get<LabelCommand>(l).labels[0].value, "web");
}

TEST(Expand, CopyFields) {
  ToyEnv env({{"SRC", "a.txt"}, {"DST", "/opt"}, {"U", "app"}, {"MODE", "0640"}, {"ST", "build"}});
  Command c = One<CopyCommand>("COPY --from=$ST --chown=$U:$U --chmod=$MODE $SRC ${DST}/ ");
  ASSERT_TRUE(env.Expand(c).ok());
  const CopyCommand& copy = std::get<CopyCommand>(c);
  EXPECT_EQ(copy.sources, (std::vector<std::string>{"a.txt"}));
  EXPECT_EQ(copy.dest, "/opt/");
  EXPECT_EQ(copy.chown, "app:app");
  EXPECT_EQ(copy.chmod, "0640");
  EXPECT_EQ(copy.chmod_mode, 0640u);
  EXPECT_EQ(copy.from, "build");

  Command bad = One<CopyCommand>("COPY --chmod=$BAD a b");
  ToyEnv bad_env({{"BAD", "rwx"}});
  Status s = bad_env.Expand(bad);
  EXPECT_EQ(s.message(), "Bad input to --chmod, expected an octal mode such as 0755, got \"rwx\"");
}

TEST(Expand, AddChecksumAfterExpansion) {
  const std::string sum = "sha256:" + std::string(64, 'b');
  ToyEnv local({{"URL", "./file"}});
  Command add = One<CopyCommand>("ADD --checksum=" + sum + " $URL /d");
  EXPECT_EQ(local.Expand(add).message(), "checksum can't be specified for non-HTTP(S) sources");
  ToyEnv remote({{"URL", "https://example.com/f"}});
  Command ok = One<CopyCommand>("ADD --checksum=" + sum + " $URL /d");
  EXPECT_TRUE(remote.Expand(ok).ok());
}

TEST(Expand, WordsAndSingleWords) {
  ToyEnv env({{"PORTS", "80 443/tcp"},
              {"VOLS", "/a /b"},
              {"U", "nobody"},
              {"D", "/srv"},
              {"SIG", "SIGTERM"}});
  Command e = One<ExposeCommand>("EXPOSE $PORTS 22");
  ASSERT_TRUE(env.Expand(e).ok());
  EXPECT_EQ(std::get<ExposeCommand>(e).ports,
            (std::vector<std::string>{"80", "443/tcp", "22"}));  // sorted as written, then split
  Command v = One<VolumeCommand>("VOLUME $VOLS");
  ASSERT_TRUE(env.Expand(v).ok());
  EXPECT_EQ(std::get<VolumeCommand>(v).volumes, (std::vector<std::string>{"/a /b"}));
  Command u = One<UserCommand>("USER $U");
  ASSERT_TRUE(env.Expand(u).ok());
  EXPECT_EQ(std::get<UserCommand>(u).user, "nobody");
  Command w = One<WorkdirCommand>("WORKDIR $D/app");
  ASSERT_TRUE(env.Expand(w).ok());
  EXPECT_EQ(std::get<WorkdirCommand>(w).path, "/srv/app");
  Command s = One<StopSignalCommand>("STOPSIGNAL $SIG");
  ASSERT_TRUE(env.Expand(s).ok());
  EXPECT_EQ(std::get<StopSignalCommand>(s).signal, "SIGTERM");
}

TEST(Expand, RunMounts) {
  ToyEnv env({{"T", "/cache"}});
  Command r = One<RunCommand>("RUN --mount=type=cache,target=$T --mount=type=ssh echo $T");
  ASSERT_TRUE(env.Expand(r).ok());
  const RunCommand& run = std::get<RunCommand>(r);
  ASSERT_EQ(run.mounts.size(), 2u);
  EXPECT_EQ(run.mounts[0].target, "/cache");
  EXPECT_EQ(run.mounts[1].type, MountType::kSsh);
  EXPECT_EQ(run.cmd.args, (std::vector<std::string>{"echo $T"}));  // the shell expands it
  Command bad = One<RunCommand>("RUN --mount=type=$T,target=/x true");
  EXPECT_EQ(env.Expand(bad).message(), "unsupported mount type \"/cache\" (did you mean cache?)");
}

TEST(Expand, LeavesOthersAlone) {
  ToyEnv env({{"X", "expanded"}});
  std::vector<Command> commands = {
      One<CmdCommand>("CMD echo $X"),        One<EntrypointCommand>("ENTRYPOINT [\"$X\"]"),
      One<ShellCommand>("SHELL [\"$X\"]"),   One<HealthcheckCommand>("HEALTHCHECK CMD $X"),
      One<OnbuildCommand>("ONBUILD RUN $X"), One<MaintainerCommand>("MAINTAINER $X"),
      One<FromCommand>("FROM $X"),
  };
  for (Command& c : commands) {
    const Command before = c;
    ASSERT_TRUE(env.Expand(c).ok());
    EXPECT_EQ(Base(c).original, Base(before).original);
  }
  EXPECT_EQ(std::get<CmdCommand>(commands[0]).cmd.args, (std::vector<std::string>{"echo $X"}));
  EXPECT_EQ(std::get<OnbuildCommand>(commands[4]).expression, "RUN $X");
  EXPECT_EQ(std::get<MaintainerCommand>(commands[5]).maintainer, "$X");
  EXPECT_EQ(std::get<FromCommand>(commands[6]).base_name, "$X");
  EXPECT_EQ(env.calls(), 0);
}

TEST(Expand, ErrorsPassThrough) {
  ToyEnv env({{"UNUSED", ""}});
  Command c = One<WorkdirCommand>("WORKDIR $FAIL");
  Status s = env.Expand(c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "FAIL: is not set");
}

// ---------------------------------------------------------------------------
// Go-compatible helpers

TEST(GoDuration, Values) {
  const long long kMs = 1000 * 1000;
  const long long kS = 1000 * kMs;
  EXPECT_EQ(*ParseGoDuration("1m30s"), 90 * kS);
  EXPECT_EQ(*ParseGoDuration("0.5s"), 500 * kMs);
  EXPECT_EQ(*ParseGoDuration("1.5h"), 5400 * kS);
  EXPECT_EQ(*ParseGoDuration("-2ms"), -2 * kMs);
  EXPECT_EQ(*ParseGoDuration("+3us"), 3000);
  EXPECT_EQ(*ParseGoDuration("3\xC2\xB5s"), 3000);
  EXPECT_EQ(*ParseGoDuration("10ns"), 10);
  EXPECT_EQ(*ParseGoDuration("0"), 0);
  EXPECT_EQ(*ParseGoDuration("1.s"), kS);
  EXPECT_EQ(*ParseGoDuration(".5s"), 500 * kMs);
  EXPECT_EQ(*ParseGoDuration("1h2m3s4ms"), 3723 * kS + 4 * kMs);
}

TEST(GoDuration, Errors) {
  EXPECT_EQ(ParseGoDuration("").status().message(), "time: invalid duration \"\"");
  EXPECT_EQ(ParseGoDuration("-").status().message(), "time: invalid duration \"-\"");
  EXPECT_EQ(ParseGoDuration(".s").status().message(), "time: invalid duration \".s\"");
  EXPECT_EQ(ParseGoDuration("1").status().message(), "time: missing unit in duration \"1\"");
  EXPECT_EQ(ParseGoDuration("5 s").status().message(),
            "time: unknown unit \" s\" in duration \"5 s\"");
  EXPECT_EQ(ParseGoDuration("3000000h").status().message(), "time: invalid duration \"3000000h\"");
}

TEST(RamInBytes, Values) {
  EXPECT_EQ(*internal::RamInBytes("10m"), 10LL << 20);
  EXPECT_EQ(*internal::RamInBytes("10 MB"), 10LL << 20);
  EXPECT_EQ(*internal::RamInBytes("2GiB"), 2LL << 30);
  EXPECT_EQ(*internal::RamInBytes("1.5k"), 1536);
  EXPECT_EQ(*internal::RamInBytes("7"), 7);
  EXPECT_EQ(*internal::RamInBytes("1b"), 1);
  EXPECT_FALSE(internal::RamInBytes("").ok());
  EXPECT_FALSE(internal::RamInBytes("m").ok());
  EXPECT_FALSE(internal::RamInBytes("-1m").ok());
  EXPECT_FALSE(internal::RamInBytes("1x").ok());
  EXPECT_FALSE(internal::RamInBytes("1.2.3m").ok());
  EXPECT_EQ(internal::RamInBytes("10q").status().message(), "invalid size: '10q'");
}

TEST(Csv, Records) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*internal::ReadCsvRecord("a,b,,c"), (V{"a", "b", "", "c"}));
  EXPECT_EQ(*internal::ReadCsvRecord("\"a,b\",\"c\"\"d\""), (V{"a,b", "c\"d"}));
  EXPECT_EQ(*internal::ReadCsvRecord("a,"), (V{"a", ""}));
  EXPECT_EQ(internal::ReadCsvRecord("\"abc").status().message(),
            "parse error on line 1, column 5: extraneous or missing \" in quoted-field");
}

TEST(HeredocWord, BuildKitCases) {
  struct Case {
    std::string_view word;
    std::string_view name;
    bool expand;
    bool chomp;
  };
  for (const Case& c : std::vector<Case>{{"<<EOF", "EOF", true, false},
                                         {"<<'EOF'", "EOF", false, false},
                                         {"<<\"EOF\"", "EOF", false, false},
                                         {"<<-EOF", "EOF", true, true},
                                         {"<<-'EOF'", "EOF", false, true},
                                         {"<<-\"EOF\"", "EOF", false, true},
                                         {"<<EO\"F\"", "EOF", false, false},
                                         {"<<eo\\'f", "eo'f", true, false},
                                         {"<<'e'o\\'f", "eo'f", false, false},
                                         {"<<'one two'", "one two", false, false},
                                         {"<<$EOF", "$EOF", true, false}}) {
    auto h = internal::ParseHeredocWord(c.word);
    ASSERT_TRUE(h.has_value()) << c.word;
    EXPECT_EQ(h->name, c.name) << c.word;
    EXPECT_EQ(h->expand, c.expand) << c.word;
    EXPECT_EQ(h->chomp, c.chomp) << c.word;
  }
  EXPECT_EQ(internal::ParseHeredocWord("3<<EOF")->file_descriptor, 3);
  for (std::string_view not_heredoc : {"", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh",
                                       "<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""}) {
    EXPECT_FALSE(internal::ParseHeredocWord(not_heredoc).has_value()) << not_heredoc;
  }
}

TEST(HeredocWord, Chomp) {
  EXPECT_EQ(internal::ChompHeredocContent("\thello\n\t\tworld\n  \tx\n"), "hello\nworld\n  \tx\n");
}

TEST(Suggestion, NearMissesOnly) {
  const std::vector<std::string_view> opts = {"bind", "cache", "tmpfs"};
  EXPECT_EQ(internal::WithSuggestion("e", "bnd", opts, true), "e (did you mean bind?)");
  EXPECT_EQ(internal::WithSuggestion("e", "volume", opts, true), "e");
  EXPECT_EQ(internal::WithSuggestion("e", "cache", opts, true), "e");
  EXPECT_EQ(internal::WithSuggestion("e", "CACH", opts, false), "e (did you mean CACHE?)");
  EXPECT_EQ(internal::WithSuggestion("e", "CACH", opts, true), "e");
  EXPECT_EQ(internal::EditDistance("kitten", "sitting"), 3);
}

TEST(FlagSet, Parsing) {
  std::vector<std::string> args = {"--a", "--s=x=y", "--m=1", "--m=2", "--", "--ignored"};
  internal::FlagSet flags(args);
  flags.AddBool("a", false);
  flags.AddBool("b", true);
  flags.AddString("s", "def");
  flags.AddString("unused", "def");
  flags.AddStrings("m");
  ASSERT_TRUE(flags.Parse().ok());
  EXPECT_TRUE(flags.IsTrue("a"));
  EXPECT_TRUE(flags.IsTrue("b"));
  EXPECT_EQ(flags.Value("s"), "x=y");
  EXPECT_EQ(flags.Value("unused"), "def");
  EXPECT_FALSE(flags.Used("unused"));
  EXPECT_EQ(flags.Values("m"), (std::vector<std::string>{"1", "2"}));

  std::vector<std::string> bad = {"-x"};
  internal::FlagSet bad_flags(bad);
  EXPECT_EQ(bad_flags.Parse().message(), "Arg should start with -- : -x");
}

TEST(ParseGoNumbers, Values) {
  EXPECT_EQ(internal::ParseGoUint32("0755", 8), 0755u);
  EXPECT_EQ(internal::ParseGoUint32("4294967295", 10), 4294967295u);
  EXPECT_FALSE(internal::ParseGoUint32("4294967296", 10).has_value());
  EXPECT_FALSE(internal::ParseGoUint32("8", 8).has_value());
  EXPECT_FALSE(internal::ParseGoUint32("", 10).has_value());
  EXPECT_FALSE(internal::ParseGoUint32("+1", 10).has_value());
  EXPECT_EQ(*internal::ParseGoInt32("-2147483648"), -2147483648LL);
  EXPECT_FALSE(internal::ParseGoInt32("2147483648").ok());
  EXPECT_EQ(internal::ParseGoBool("T"), true);
  EXPECT_EQ(internal::ParseGoBool("False"), false);
  EXPECT_FALSE(internal::ParseGoBool("yes").has_value());
}

// ---------------------------------------------------------------------------
// Real-world Dockerfiles: every corpus file the parser accepts gives typed
// instructions, except these, which BuildKit v0.10 refuses as well
// (templates, buildah-only flags, deliberately bad test files).

struct CorpusFailure {
  int line;
  std::string_view message;
};
const std::map<std::string_view, CorpusFailure>& ExpectedCorpusFailures() {
  static const auto* failures = new std::map<std::string_view, CorpusFailure>{
      {"0007-adoptium-docker_templates-alpine-linux.Dockerfile.j2", {1, "unknown instruction: {%"}},
      {"0008-adoptium-docker_templates-servercore.Dockerfile.j2", {1, "unknown instruction: {%"}},
      {"0009-adoptium-docker_templates-ubi-minimal.Dockerfile.j2", {1, "unknown instruction: {%"}},
      {"0102-buildah-tests-bud-add-checksum-Containerfile.bad",
       {2, "Missing a value on flag: checksum"}},
      {"0103-buildah-tests-bud-add-chmod-Dockerfile.bad", {3, "Missing a value on flag: chmod"}},
      {"0109-buildah-tests-bud-base-with-arg",
       {13,
        "invalid name for build stage: \"platform-arm/v7\", name can't start with a number or "
        "contain symbols"}},
      {"0119-buildah-tests-bud-buildkit-mount-Dockerfile3",
       {4, "invalid field 'z' must be a key=value pair"}},
      {"0133-buildah-tests-bud-copy-chmod-Dockerfile.bad", {3, "Missing a value on flag: chmod"}},
      {"0134-buildah-tests-bud-copy-exclude", {2, "Unknown flag: exclude"}},
      {"0135-buildah-tests-bud-copy-exclude-Containerfile.missing", {2, "Unknown flag: exclude"}},
      {"0142-buildah-tests-bud-copy-multistage-paths-Dockerfile.invalid_f",
       {3, "Missing a value on flag: from"}},
      {"0143-buildah-tests-bud-copy-parents", {3, "Unknown flag: parents"}},
      {"0144-buildah-tests-bud-copy-parents-Containerfile-hardlinks", {2, "Unknown flag: parents"}},
      {"0150-buildah-tests-bud-from-multiple-files-Dockerfile2.nofrom",
       {1, "no build stage in current context"}},
      {"0153-buildah-tests-bud-healthcheck", {2, "Unknown flag: start-interval"}},
      {"0156-buildah-tests-bud-inline-network-Dockerfile3", {2, "invalid network mode \"fake\""}},
      {"0251-buildpack-deps-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0263-Dockerfile-cli.template", {1, "unknown instruction: {{"}},
      {"0264-Dockerfile-dind-rootless.template", {1, "unknown instruction: {{"}},
      {"0265-Dockerfile-dind.template", {1, "unknown instruction: {{"}},
      {"0266-Dockerfile-windows-servercore.template",
       {1, "FROM requires either one or three arguments"}},
      {"0277-golang-Dockerfile-linux.template", {1, "unknown instruction: {{"}},
      {"0278-golang-Dockerfile-windows-nanoserver.template",
       {1, "FROM requires either one or three arguments"}},
      {"0279-golang-Dockerfile-windows-servercore.template",
       {1, "FROM requires either one or three arguments"}},
      {"0295-haproxy-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0314-mongo-Dockerfile-linux.template", {1, "unknown instruction: {{"}},
      {"0317-mysql-Dockerfile.oracle", {1, "unknown instruction: {{"}},
      {"0327-openjdk-Dockerfile-linux.template", {1, "unknown instruction: {{"}},
      {"0328-openjdk-Dockerfile-windows.template", {1, "unknown instruction: {{"}},
      {"0337-php-Dockerfile-linux.template", {1, "unknown instruction: {{"}},
      {"0345-php-apache-alpine-Dockerfile-block-1", {1, "no build stage in current context"}},
      {"0353-postgres-Dockerfile-alpine.template", {1, "unknown instruction: {{"}},
      {"0354-postgres-Dockerfile-debian.template",
       {1, "FROM requires either one or three arguments"}},
      {"0362-python-Dockerfile-linux.template", {1, "unknown instruction: {{"}},
      {"0363-python-Dockerfile-windows.template",
       {1, "FROM requires either one or three arguments"}},
      {"0378-rabbitmq-Dockerfile-management.template", {4, "unknown instruction: \"RABBITMQ:\""}},
      {"0384-redis-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0392-ruby-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0395-wordpress-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0477-compose-pkg-e2e-fixtures-wrong-composefile-service1",
       {17, "unknown instruction: WRONG"}},
      {"0594-jessfraz-commit-watcher", {10, "unknown instruction: RUBY-TZINFO"}},
      {"0626-dotnet-framework-docker-eng-dockerfile-templates-aspnet",
       {4, "FROM requires either one or three arguments"}},
      {"0627-dotnet-framework-docker-eng-dockerfile-templates-aspnet-Dock",
       {4, "FROM requires either one or three arguments"}},
      {"0630-dotnet-framework-docker-eng-dockerfile-templates-sdk-Dockerf",
       {1, "unknown instruction: {{"}},
      {"0631-dotnet-framework-docker-eng-dockerfile-templates-wcf",
       {4, "FROM requires either one or three arguments"}},
      {"0715-nginx-Dockerfile-alpine-otel.template", {8, "unknown instruction: \""}},
      {"0716-nginx-Dockerfile-debian-perl.template", {7, "unknown instruction: \""}},
      {"0729-node-Dockerfile-alpine.template", {14, "unknown instruction: ESAC"}},
      {"0730-node-Dockerfile-slim.template", {11, "unknown instruction: ESAC"}},
      {"0755-tianon-backblaze-b2-Dockerfile.template",
       {1, "FROM requires either one or three arguments"}},
      {"0757-tianon-beets-Dockerfile.template", {1, "FROM requires either one or three arguments"}},
      {"0762-tianon-buildkit-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0766-tianon-containerd-Dockerfile.template", {26, "unknown instruction: {{"}},
      {"0768-tianon-coredns-Dockerfile.template", {11, "unknown instruction: {{"}},
      {"0771-tianon-cygwin-Dockerfile.template",
       {1, "FROM requires either one or three arguments"}},
      {"0774-tianon-docker-desktop-Dockerfile.template", {74, "unknown instruction: {{"}},
      {"0777-tianon-docker-master-Dockerfile.template", {7, "unknown instruction: {{"}},
      {"0782-tianon-infosiftr-moby-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0783-tianon-jenkins-Dockerfile.template",
       {34, "unknown instruction: .[ENV.VARIANT].VERSION"}},
      {"0790-tianon-microsoft-edge-Dockerfile.template", {1, "unknown instruction: {{"}},
      {"0798-tianon-nolibc-Dockerfile.template", {15, "unknown instruction: XZ-UTILS"}},
      {"0802-tianon-prometheus-Dockerfile.template", {29, "unknown instruction: {{"}},
      {"0804-tianon-prometheus-alertmanager-Dockerfile.template", {28, "unknown instruction: {{"}},
      {"0806-tianon-prometheus-blackbox-exporter-Dockerfile.template",
       {29, "unknown instruction: {{"}},
      {"0808-tianon-prometheus-node-exporter-Dockerfile.template", {27, "unknown instruction: {{"}},
      {"0819-tianon-speedtest-Dockerfile.template", {10, "unknown instruction: {{"}},
      {"0825-tianon-tinygo-Dockerfile.template",
       {1, "FROM requires either one or three arguments"}},
      {"0831-tianon-vultr-cli-Dockerfile.template", {13, "unknown instruction: {{"}},
      {"0837-tianon-ymlfmt-Dockerfile.template",
       {1, "FROM requires either one or three arguments"}},
      {"0842-tianon-github-pages-Dockerfile.template",
       {2, "FROM requires either one or three arguments"}},
  };
  return *failures;
}

TEST(Corpus, RealWorldDockerfiles) {
  // The third-party corpus stays outside the repository (KILN_CONFORMANCE_CORPUS).
  const std::filesystem::path corpus = KILN_CONFORMANCE_CORPUS;
  if (!std::filesystem::exists(corpus)) {
    GTEST_SKIP() << "SKIPPED: the Dockerfile corpus is not at " << corpus
                 << " (set KILN_CONFORMANCE_CORPUS)";
  }
  int parsed = 0;
  int failed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    const std::filesystem::path file = entry.path() / "Dockerfile";
    if (!std::filesystem::exists(file) || std::filesystem::exists(entry.path() / "error")) {
      continue;  // the parser's own failures are the parser's tests
    }
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    SourceRange where;
    auto df = ParseDockerfile(text.str(), &where);
    const std::string name = entry.path().filename().string();
    auto expected = ExpectedCorpusFailures().find(name);
    if (expected == ExpectedCorpusFailures().end()) {
      EXPECT_TRUE(df.ok()) << name << ":" << where.start_line << ": " << df.status().ToString();
      if (df.ok()) {
        ++parsed;
        EXPECT_FALSE(df->stages.empty()) << name;
      }
    } else {
      ++failed;
      ASSERT_FALSE(df.ok()) << name;
      EXPECT_EQ(df.status().message(), expected->second.message) << name;
      EXPECT_EQ(where.start_line, expected->second.line) << name;
    }
  }
  EXPECT_EQ(failed, static_cast<int>(ExpectedCorpusFailures().size()));
  EXPECT_GT(parsed, 750);
}

}  // namespace
}  // namespace kiln::dockerfile
