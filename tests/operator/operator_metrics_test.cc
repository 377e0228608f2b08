#include <doctest/doctest.h>

#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "operator/operator_metrics.h"

using pi0::op::Action;
using pi0::op::ActionResult;
using pi0::op::Controller;
using pi0::op::MatrixFigures;
using pi0::op::OperatorMetrics;
using pi0::stability::ChannelState;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("every family is declared with HELP and TYPE") {
  OperatorMetrics m;
  // The per-matrix families have no series, and so are not rendered, until a matrix is set.
  CHECK_FALSE(contains(m.render(), "pi0_operator_load"));
  CHECK_FALSE(contains(m.render(), "pi0_operator_channel_state"));
  m.setMatrix("m", MatrixFigures{});
  m.setChannelState({"ns", "c"}, ChannelState::kActive);
  const auto text = m.render();
  struct Family {
    const char* name;
    const char* type;
  };
  for (const auto& f :
       {Family{"pi0_operator_load", "gauge"}, Family{"pi0_operator_level", "gauge"},
        Family{"pi0_operator_levels", "gauge"}, Family{"pi0_operator_stability", "gauge"},
        Family{"pi0_operator_stability_threshold", "gauge"},
        Family{"pi0_operator_availability", "gauge"}, Family{"pi0_operator_channel_state", "gauge"},
        Family{"pi0_operator_anticipated_load", "gauge"},
        Family{"pi0_operator_anticipated_level_changes_total", "counter"},
        Family{"pi0_operator_actions_total", "counter"},
        Family{"pi0_operator_reconcile_duration_seconds", "histogram"},
        Family{"pi0_operator_reconcile_errors_total", "counter"},
        Family{"pi0_operator_fleet_polls_total", "counter"}, Family{"pi0_operator_leader", "gauge"},
        Family{"pi0_operator_workqueue_depth", "gauge"},
        Family{"pi0_operator_events_total", "counter"}}) {
    const std::string name = f.name;
    CAPTURE(name);
    CHECK(contains(text, std::string("# HELP ") + f.name + " "));
    CHECK(contains(text, std::string("# TYPE ") + f.name + " " + f.type + "\n"));
  }
  // Series with fixed labels exist from the start, at 0.
  CHECK(contains(text, "pi0_operator_actions_total{action=\"shutdown\",result=\"error\"} 0\n"));
  CHECK(contains(text, "pi0_operator_reconcile_errors_total{controller=\"channel\"} 0\n"));
  CHECK(contains(text, "pi0_operator_fleet_polls_total{result=\"skipped_open\"} 0\n"));
  CHECK(contains(text, "pi0_operator_leader 0\n"));
  // A matrix's anticipation series exist with it: no rise yet, no anticipated load (off).
  CHECK(contains(text, "pi0_operator_anticipated_level_changes_total{matrix=\"m\"} 0\n"));
  CHECK(contains(text, "pi0_operator_anticipated_load{matrix=\"m\"} Nan\n"));
}

TEST_CASE("values appear after updates") {
  OperatorMetrics m;
  m.setMatrix("web", MatrixFigures{.load = 0.75,
                                   .level = 2,
                                   .levels = 4,
                                   .stability = 0.5,
                                   .stabilityThreshold = 0.625,
                                   .availability = 0.875,
                                   .anticipatedLoad = 0.8125});
  m.countAnticipatedRise("web");
  m.countAnticipatedRise("web");
  m.countAction(Action::kDegrade, ActionResult::kOk);
  m.countAction(Action::kDegrade, ActionResult::kOk);
  m.countAction(Action::kRestore, ActionResult::kError);
  m.observeReconcile(Controller::kMatrix, 0.2, false);
  m.observeReconcile(Controller::kMatrix, 3.0, true);
  m.setWorkqueueDepth(Controller::kChannel, 4);
  m.setLeader(true);
  pi0::fleet::PollCounters polls;
  polls.ok = 5;
  polls.timeout = 2;
  m.syncFleet(polls, true, nullptr);
  polls.ok = 8;
  m.syncFleet(polls, true, nullptr);
  m.syncFleet(polls, true, nullptr);  // nothing new: no change

  const auto text = m.render();
  CHECK(contains(text, "pi0_operator_load{matrix=\"web\"} 0.75\n"));
  CHECK(contains(text, "pi0_operator_level{matrix=\"web\"} 2\n"));
  CHECK(contains(text, "pi0_operator_levels{matrix=\"web\"} 4\n"));
  CHECK(contains(text, "pi0_operator_stability{matrix=\"web\"} 0.5\n"));
  CHECK(contains(text, "pi0_operator_stability_threshold{matrix=\"web\"} 0.625\n"));
  CHECK(contains(text, "pi0_operator_availability{matrix=\"web\"} 0.875\n"));
  CHECK(contains(text, "pi0_operator_anticipated_load{matrix=\"web\"} 0.8125\n"));
  CHECK(contains(text, "pi0_operator_anticipated_level_changes_total{matrix=\"web\"} 2\n"));
  CHECK(contains(text, "pi0_operator_actions_total{action=\"degrade\",result=\"ok\"} 2\n"));
  CHECK(contains(text, "pi0_operator_actions_total{action=\"restore\",result=\"error\"} 1\n"));
  CHECK(contains(text, "pi0_operator_actions_total{action=\"degrade\",result=\"error\"} 0\n"));
  CHECK(contains(text, "pi0_operator_reconcile_duration_seconds_count{controller=\"matrix\"} 2\n"));
  CHECK(contains(text, "pi0_operator_reconcile_duration_seconds_sum{controller=\"matrix\"} 3.2"));
  CHECK(contains(
      text,
      "pi0_operator_reconcile_duration_seconds_bucket{controller=\"matrix\",le=\"0.25\"} 1\n"));
  CHECK(contains(
      text, "pi0_operator_reconcile_duration_seconds_bucket{controller=\"matrix\",le=\"5\"} 2\n"));
  CHECK(contains(text, "pi0_operator_reconcile_errors_total{controller=\"matrix\"} 1\n"));
  CHECK(contains(text, "pi0_operator_reconcile_errors_total{controller=\"channel\"} 0\n"));
  CHECK(contains(text, "pi0_operator_workqueue_depth{controller=\"channel\"} 4\n"));
  CHECK(contains(text, "pi0_operator_leader 1\n"));
  CHECK(contains(text, "pi0_operator_fleet_polls_total{result=\"ok\"} 8\n"));
  CHECK(contains(text, "pi0_operator_fleet_polls_total{result=\"timeout\"} 2\n"));
  CHECK(contains(text, "pi0_operator_fleet_polls_total{result=\"error\"} 0\n"));

  m.removeMatrix("web");
  m.setLeader(false);
  const auto after = m.render();
  CHECK_FALSE(contains(after, "matrix=\"web\""));
  CHECK_FALSE(contains(after, "pi0_operator_levels"));
  CHECK_FALSE(contains(after, "pi0_operator_stability_threshold"));
  CHECK(contains(after, "pi0_operator_leader 0\n"));
}

TEST_CASE("a channel's state is 1 on its own state's series and 0 on the others, until deleted") {
  OperatorMetrics m;
  auto series = [](const std::string& ns, const std::string& name, const std::string& state) {
    return "pi0_operator_channel_state{channel=\"" + name + "\",channel_namespace=\"" + ns +
           "\",state=\"" + state + "\"} ";
  };
  m.setChannelState({"shop", "batch"}, ChannelState::kActive);
  m.setChannelState({"shop", "api"}, ChannelState::kActive);
  m.setChannelState({"lab", "batch"}, ChannelState::kDegraded);
  auto text = m.render();
  CHECK(contains(text, series("shop", "batch", "Active") + "1\n"));
  CHECK(contains(text, series("shop", "batch", "Degraded") + "0\n"));
  CHECK(contains(text, series("shop", "batch", "Inactive") + "0\n"));
  CHECK(contains(text, series("lab", "batch", "Active") + "0\n"));
  CHECK(contains(text, series("lab", "batch", "Degraded") + "1\n"));

  // Shut down: the state moves, the series stay (3 per channel).
  m.setChannelState({"shop", "batch"}, ChannelState::kInactive);
  text = m.render();
  CHECK(contains(text, series("shop", "batch", "Active") + "0\n"));
  CHECK(contains(text, series("shop", "batch", "Degraded") + "0\n"));
  CHECK(contains(text, series("shop", "batch", "Inactive") + "1\n"));
  CHECK(contains(text, series("shop", "api", "Active") + "1\n"));
  std::size_t count = 0;
  for (auto at = text.find("\npi0_operator_channel_state{"); at != std::string::npos;
       at = text.find("\npi0_operator_channel_state{", at + 1)) {
    ++count;
  }
  CHECK(count == 9);

  // Deleted: its series go, the others stay; removing an unknown channel is a no-op.
  m.removeChannel("shop/batch");
  m.removeChannel("shop/unknown");
  text = m.render();
  CHECK_FALSE(contains(text, "channel=\"batch\",channel_namespace=\"shop\""));
  CHECK(contains(text, series("lab", "batch", "Degraded") + "1\n"));
  CHECK(contains(text, series("shop", "api", "Active") + "1\n"));
}

TEST_CASE("a restarted poller's counters are followed from where they start again") {
  OperatorMetrics m;
  pi0::fleet::PollCounters first;
  first.error = 10;
  m.syncFleet(first, true, nullptr);
  pi0::fleet::PollCounters second;  // a new poller, from 0
  second.error = 3;
  m.syncFleet(second, true, nullptr);
  CHECK(contains(m.render(), "pi0_operator_fleet_polls_total{result=\"error\"} 13\n"));
}

TEST_CASE("the Event recorder's and the caches' own counts, as they were at the scrape") {
  OperatorMetrics m;
  CHECK(contains(m.render(), "pi0_operator_events_total{result=\"failed\"} 0\n"));
  pi0::kube::EventRecorder::Counters events;
  events.created = 7;
  events.aggregated = 2;
  events.failed = 1;
  pi0::kube::Reflector::Counters pods;
  pods.lists = 2;
  pods.failures = 4;
  m.syncEvents(events);
  m.syncCache("pods", pods);
  m.syncEvents(events);  // a scrape that saw nothing new adds nothing
  m.syncCache("pods", pods);
  const auto text = m.render();
  CHECK(contains(text, "pi0_operator_events_total{result=\"created\"} 7\n"));
  CHECK(contains(text, "pi0_operator_events_total{result=\"aggregated\"} 2\n"));
  CHECK(contains(text, "pi0_operator_events_total{result=\"dropped\"} 0\n"));
  CHECK(contains(text, "pi0_operator_events_total{result=\"failed\"} 1\n"));
  CHECK(contains(text, "pi0_operator_cache_lists_total{resource=\"pods\"} 2\n"));
  CHECK(contains(text, "pi0_operator_cache_failures_total{resource=\"pods\"} 4\n"));
  events.failed = 3;
  m.syncEvents(events);
  CHECK(contains(m.render(), "pi0_operator_events_total{result=\"failed\"} 3\n"));
}

TEST_CASE("promtool accepts the exposition") {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    FAIL("promtool is not installed (it is part of Prometheus; scripts/setup.sh installs it)");
  }
  OperatorMetrics m;
  m.setMatrix("web", MatrixFigures{0.75, 2, 4, 0.5, 0.6, 0.875});
  m.setMatrix("batch", MatrixFigures{0.1, 0, 1, 1, 0.5, 1});
  m.setChannelState({"shop", "batch"}, ChannelState::kInactive);
  m.countAction(Action::kShutdown, ActionResult::kOk);
  m.observeReconcile(Controller::kChannel, 0.01, false);
  m.setLeader(true);
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pi0-op-metrics-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "metrics.txt") << m.render(); }
  const std::string command = "promtool check metrics < '" + (dir / "metrics.txt").string() +
                              "' > '" + (dir / "out.txt").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  std::string output;
  {
    std::ifstream in(dir / "out.txt");
    output.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::filesystem::remove_all(dir);
  CAPTURE(output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the ledger's figures: writes, outcomes from 0, and the gates' rates once judged") {
  OperatorMetrics m;
  auto text = m.render();
  CHECK(contains(text, "pi0_operator_ledger_writes_total{result=\"stored\"} 0\n"));
  CHECK(contains(text, "pi0_operator_ledger_outcomes_total{kind=\"node_trouble\"} 0\n"));
  CHECK_FALSE(contains(text, "pi0_operator_gate_falsification_ratio{"));
  m.countLedgerWrite("stored", 3, 1);
  m.countLedgerOutcome("oom_killed", 2);
  // isolation: 4 admissions judged, 1 falsified; no denial yet, so no miss ratio.
  m.setGateRates({{"cpu", "isolation", 4, 1, 0, 0}, {"memory", "fit_error", 0, 0, 5, 2}});
  text = m.render();
  CHECK(contains(text, "pi0_operator_ledger_writes_total{result=\"stored\"} 1\n"));
  CHECK(contains(text, "pi0_operator_ledger_decisions_received_total{kind=\"repeated\"} 1\n"));
  CHECK(contains(text, "pi0_operator_ledger_outcomes_total{kind=\"oom_killed\"} 2\n"));
  CHECK(contains(
      text, "pi0_operator_gate_falsification_ratio{gate=\"isolation\",resource=\"cpu\"} 0.25\n"));
  CHECK_FALSE(contains(text, "pi0_operator_gate_miss_ratio{gate=\"isolation\""));
  CHECK(
      contains(text, "pi0_operator_gate_miss_ratio{gate=\"fit_error\",resource=\"memory\"} 0.4\n"));
  CHECK(contains(text,
                 "pi0_operator_gate_judged_decisions{gate=\"fit_error\",resource=\"memory\","
                 "verdict=\"denied\"} 5\n"));
}
