"""`python -m infalign_core sample/calibrate/train/winrate` on folders of each real architecture."""

from __future__ import annotations

import json
import subprocess
import sys

import arch_zoo as zoo
import pytest

from infalign_core.cli import main

PROMPTS = [
    "how do i help",
    "what is the plot",
    "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: why\n\nAssistant:",
]


@pytest.fixture()
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("arch", zoo.CAUSAL_ARCHS)
def test_sample_calibrate_train_winrate_run_on_each_architecture(
    arch, arch_zoo, prompt_file, tmp_path, capsys
):
    policy, reward = str(arch_zoo[f"policy-{arch}"]), str(arch_zoo["reward-qwen2-3labels"])
    common = ["--policy", policy, "--reward", reward, "--label", "helpful", "--device", "cpu"]
    assert (
        main(["sample", "--prompt", "how do i help", "--n", "3", "--max-new-tokens", "4", *common, "--json"])
        == 0
    )
    rows = _json(capsys)
    assert len(rows) == 3 and all("rendered_prompt" in r for r in rows)
    if arch != "gpt_neox":
        assert rows[0]["rendered_prompt"].endswith(
            "<|im_start|>" + ("model" if arch == "gemma" else "assistant") + "\n"
        )
    cache = ["--cache-dir", str(tmp_path / "banks")]
    calibrate = ["calibrate", "--prompts", str(prompt_file), "--num-prompts", "3", "--m", "4"]
    assert main([*calibrate, "--max-new-tokens", "4", *common, *cache, "--json"]) == 0
    assert _json(capsys)["m"] == 4
    run = tmp_path / "run"
    train = ["train", "--run-dir", str(run), "--prompts", str(prompt_file), "--num-prompts", "3"]
    sizes = ["--prompts-per-step", "2", "--k", "2", "--m", "4", "--steps", "1", "--max-new-tokens", "4"]
    assert (
        main([*train, *sizes, *common[:4], "--reward-label", "helpful", "--device", "cpu", *cache, "--json"])
        == 0
    )
    assert _json(capsys)["step"] == 1
    winrate = ["winrate", "--policy", str(run), "--n", "2", "--k", "2", "--prompts", str(prompt_file)]
    assert main([*winrate, "--num-prompts", "3", "--resamples", "20", "--device", "cpu", "--json"]) == 0
    out = _json(capsys)
    assert 0.0 <= out["bon_win_rate"] <= 1.0


def test_completion_mode_flag_conditions_on_the_raw_prompt(arch_zoo, capsys):
    args = ["sample", "--prompt", "how do i help", "--n", "1", "--max-new-tokens", "2", "--device", "cpu"]
    policy = ["--policy", str(arch_zoo["policy-qwen2"]), "--reward", str(arch_zoo["reward-llama"])]
    assert main([*args, *policy, "--completion-mode", "--json"]) == 0
    assert _json(capsys)[0]["rendered_prompt"] == "how do i help"
    assert main([*args, *policy, "--system-prompt", "be brief", "--json"]) == 0
    assert "<|im_start|>system\nbe brief" in _json(capsys)[0]["rendered_prompt"]


def test_messages_flag_takes_a_multi_turn_prompt(arch_zoo, capsys):
    messages = json.dumps(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    )
    policy = ["--policy", str(arch_zoo["policy-llama"]), "--reward", str(arch_zoo["reward-llama"])]
    assert (
        main(
            [
                "sample",
                "--messages",
                messages,
                "--n",
                "1",
                "--max-new-tokens",
                "2",
                *policy,
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    rendered = _json(capsys)[0]["rendered_prompt"]
    assert (
        "user\na<|im_end|>" in rendered
        and "assistant\nb<|im_end|>" in rendered
        and "user\nc<|im_end|>" in rendered
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--messages", '[{"role": "wizard", "content": "x"}]'], "role 'wizard'"),
        (["--messages", "not json"], "--messages is not valid JSON"),
        (["--prompt", "hi", "--system-prompt", "x", "--policy", "GEMMA"], "chat template failed to render"),
    ],
)
def test_bad_chat_input_is_one_error_line(arch_zoo, capsys, argv, message):
    argv = [str(arch_zoo["policy-gemma"]) if a == "GEMMA" else a for a in argv]
    if "--policy" not in argv:
        argv += ["--policy", str(arch_zoo["policy-llama"])]
    code = main(["sample", *argv, "--n", "1", "--reward", str(arch_zoo["reward-llama"]), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1]


def test_reward_head_with_several_labels_and_none_chosen_is_one_error_line(arch_zoo, capsys):
    code = main(
        ["sample", "--prompt", "hi", "--n", "1", "--policy", str(arch_zoo["policy-llama"]),
         "--reward", str(arch_zoo["reward-qwen2-3labels"]), "--device", "cpu"]
    )  # fmt: skip
    assert code == 2 and "choose which one is the reward" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_samples_from_a_llama_folder(arch_zoo):
    result = subprocess.run(
        [sys.executable, "-m", "infalign_core", "sample", "--prompt", "hi", "--n", "2", "--max-new-tokens", "3",
         "--policy", str(arch_zoo["policy-llama"]), "--reward", str(arch_zoo["reward-llama"]), "--device", "cpu",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2


def test_train_flags_for_real_models_parse_into_the_config():
    from infalign_core.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--run-dir", "x", "--completion-mode", "--gradient-checkpointing", "false", "--lora-rank", "16",
         "--prompt-subset", "harmless-base", "--system-prompt", "be kind"]
    )  # fmt: skip
    assert args.cfg_completion_mode is True and args.cfg_gradient_checkpointing is False
    assert args.cfg_lora_rank == 16 and args.cfg_prompt_subset == "harmless-base"
    assert args.cfg_system_prompt == "be kind"


def test_a_bad_boolean_flag_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--run-dir", "x", "--completion-mode", "maybe"])
    assert exit_.value.code == 2
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err
