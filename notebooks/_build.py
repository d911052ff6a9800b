"""Regenerate the notebooks (without outputs) from the cells below: python notebooks/_build.py"""

from pathlib import Path

import nbformat

HERE = Path(__file__).parent

NOTEBOOKS = {
    "01_load_data.ipynb": [
        "# 01 Load data: macaque arrays, blur fMRI and human ratings\n\nEvery loader returns the same contract: "
        "an `xarray.DataArray` `(presentation, neuroid, time_bin)` with `stimulus_id`, `neuroid_id` and "
        "millisecond time bins (human ratings: per-trial and per-stimulus tables). Real-format files come from "
        "`../shared/data` (beside the checkout); the simulators write the same formats with a planted truth.",
        "import tempfile\nfrom pathlib import Path\n\nimport data_adapters\nfrom workbench import simulators\nfrom workbench.assembly import "
        "average_repetitions\n\nSHARED = Path.cwd().resolve().parent.parent / 'shared' / 'data'\n"
        "WORK = Path(tempfile.mkdtemp())\nprint(SHARED.exists(), WORK)",
        "## Real-format files\nA BrainIO netCDF assembly and a BData HDF5 file from `../shared/data`.",
        "brainio = data_adapters.load(SHARED / 'brainio' / 'assy_test_TestMe.nc')\nprint(brainio.dims, "
        "brainio.shape)\nbdata = data_adapters.load(SHARED / 'bdata' / 'sample_vmap.h5', require_roi=False)\nprint(bdata.dims, "
        "bdata.shape)",
        "## Simulated macaque arrays (BrainIO netCDF, 10 ms bins)",
        "macaque = simulators.simulate_macaque(WORK / 'macaque.nc', n_stimuli=60, n_repetitions=6)\n"
        "trials = data_adapters.load(macaque.path)\nmean = average_repetitions(trials)\n"
        "mean.groupby('region').mean().mean('presentation').plot.line(x='time_bin', hue='region');",
        "## Simulated blur fMRI (BData .h5) and human ratings (psiTurk sqlite)",
        "fmri = simulators.simulate_blur_fmri(WORK / 'fmri', n_subjects=1, write_nifti=False)\n"
        "bold = data_adapters.load(fmri.bdata['sub-01'])\nprint(bold.sizes, sorted(set(bold.region.values)))\n"
        "human = simulators.simulate_human_ratings(WORK / 'ratings.sqlite', n_images=40, n_workers=20)\n"
        "ratings = data_adapters.load(human.path)\nratings.per_stimulus.head()",
    ],
    "02_extract_over_time.ipynb": [
        "# 02 Extract a recurrent model over time\n\n`extract` records every call of a module reused across "
        "steps, maps steps to milliseconds with a presentation protocol, and can stream to zarr.",
        "import tempfile\nfrom workbench.models import PresentationProtocol, extract, zoo\nfrom workbench.stimuli "
        "import digits\n\nmodel = zoo.build('bl', seed=0, channels=(8, 16))\nstimuli = digits(40, size=32)\n"
        "protocol = PresentationProtocol(image_steps=10, blank_steps=15, step_ms=10)\n"
        "features = extract(model, stimuli, protocol=protocol, progress=False)\nfeatures",
        "## Layer-per-step unrolling (ConvRNN): layer k first responds at step k",
        "convrnn = zoo.build('convrnn', seed=0, channels=(4, 8, 8))\nlayered = extract(convrnn, stimuli, "
        "protocol=PresentationProtocol(unrolling='layer_per_step'), progress=False)\nactivity = "
        "abs(layered).groupby('layer').mean().mean('presentation')\nactivity.plot.line(x='time_bin', "
        "hue='layer');",
        "## Bounded memory: stream to zarr with a seeded sparse random projection",
        "from workbench.models.reductions import SparseRandomProjection\nstore = tempfile.mkdtemp() + "
        "'/features.zarr'\nlazy = extract(model, stimuli, protocol=protocol, progress=False, "
        "reduction=SparseRandomProjection(64, seed=0), store=store)\nlazy.sizes",
    ],
    "03_shared_time_fit.ipynb": [
        "# 03 Shared-over-time fit with ceilings and p-values\n\nOne ridge map for all time bins (Nayebi et "
        "al.), outer CV by image, split-half ceilings, a held-out permutation test and a layer-to-region map.",
        "import tempfile\nfrom pathlib import Path\n\nimport data_adapters\nfrom workbench import simulators\nfrom workbench.metrics import "
        "encoding_score, map_layers_to_regions, summarize\nfrom workbench.models import BLNet, "
        "PresentationProtocol, extract\nfrom workbench.stats import heldout_permutation_test\n\n"
        "simulation = simulators.simulate_macaque(Path(tempfile.mkdtemp()) / 'm.nc', n_stimuli=120, "
        "n_repetitions=10)\ntrials = data_adapters.load(simulation.path)\nmodel = "
        "BLNet.from_config(simulation.brain)  # the network that generated the data\nfeatures = "
        "extract(model, simulation.stimuli, protocol=PresentationProtocol(onset_ms=50), progress=False)",
        "result = encoding_score(features, trials, n_splits=5, seed=0)\nsummarize(result).to_frame()",
        "test = heldout_permutation_test(result, n_permutations=1000, seed=0)\ntest.scores().to_frame()",
        "result['r'].median('neuroid').plot(x='time_bin_start');",
        "mapping = map_layers_to_regions(features, trials, seed=0)\nmapping.records()",
    ],
    "04_denoising_dimensionality.ipynb": [
        "# 04 De-noising and dimensionality on models and fMRI\n\nLindsay et al.'s de-noising index "
        "d = r(clean_ff, noisy_rec) - r(clean_ff, noisy_ff) and the participation ratio, on the blur fMRI "
        "simulation (planted de-noising in V4 and LOC) and on a model.",
        "import tempfile\n\nimport data_adapters\nfrom workbench import simulators\nfrom workbench.assembly import average_repetitions\nfrom "
        "workbench.metrics import denoising, dimensionality\n\nsim = simulators.simulate_blur_fmri("
        "tempfile.mkdtemp(), n_subjects=1, write_nifti=False, seed=0)\nbold = average_repetitions("
        "data_adapters.load(sim.bdata['sub-01']))\nd = denoising.fmri_denoising_index(bold, level=25.0)\n"
        "import pandas as pd\ndenoising.denoising_test(d, n_permutations=1000).to_frame()[['region', "
        "'value', 'ci_low', 'ci_high', 'p_value', 'q_value']]",
        "## A model: predictive feedback vs its feedforward core\n(untrained here, to keep the notebook "
        "fast; `workbench.replications.lindsay()` runs the trained comparison)",
        "from workbench.degradations import pixel_noise\nfrom workbench.models import zoo, extract, "
        "PresentationProtocol\nfrom workbench.stimuli import digits\n\nclean = digits(100, size=32)\nnoisy = "
        "pixel_noise(clean, 1.5, seed=0)\ncore = zoo.build('lindsay-ff', seed=0)\npredictive = "
        "zoo.build('lindsay-predictive', seed=0)\npredictive.load_state_dict(core.state_dict(), "
        "strict=False)\nprotocol = PresentationProtocol(image_steps=4, blank_steps=0)\nrun = lambda m, s: "
        "extract(m, s, protocol=protocol, progress=False).isel(time_bin=-1)\nindex = "
        "denoising.denoising_index(run(core, clean), run(predictive, noisy), run(core, noisy))\n"
        "denoising.denoising_test(index, n_permutations=1000).to_frame()[['region', 'value', 'p_value']]",
        "features = extract(predictive, noisy, protocol=protocol, progress=False)\n"
        "dimensionality.participation_ratios(features, by='layer')",
    ],
    "05_rt_vs_uncertainty.ipynb": [
        "# 05 Reaction times vs human uncertainty\n\nEntropy of the cumulative readout per step; RT = first "
        "step below a threshold fitted on training images; Spearman rho with human uncertainty on held-out "
        "images, with a permutation null that refits the threshold.",
        "import tempfile\nfrom pathlib import Path\n\nimport torch\nimport xarray as xr\n\nimport "
        "data_adapters\nfrom workbench import simulators\nfrom workbench.metrics import reaction_time as rt\nfrom workbench.models import zoo\n"
        "from workbench.replications import human_uncertainty, spoerer_stimuli\n\nstimuli, planted = "
        "spoerer_stimuli(n=200)\npath = Path(tempfile.mkdtemp()) / 'ratings.sqlite'\n"
        "simulators.simulate_human_ratings(path, uncertainty=planted, seed=0)\nD = "
        "human_uncertainty(data_adapters.load(path))",
        "model = zoo.build('bl', seed=0, channels=(8, 16))  # train it with `workbench train bl` for real use\n"
        "with torch.no_grad():\n    logits = model(torch.from_numpy(stimuli.images)[:, None].expand(-1, 8, -1, "
        "-1, -1)).numpy()\nentropy = rt.readout_entropy(rt.cumulative_probabilities(logits, cumulative=False))\n"
        "entropy = xr.DataArray(entropy, dims=('presentation', 'time_bin'), coords={'stimulus_id': "
        "('presentation', stimuli.stimulus_ids), 'category_name': ('presentation', "
        "stimuli.metadata['label'].to_numpy())})\nrecord = rt.rt_uncertainty_score(entropy, D, "
        "n_permutations=1000, within='category_name')\n{k: v for k, v in record.items() if k != 'rt'}",
        "import matplotlib.pyplot as plt\nplt.scatter(D.reindex(record['rt'].index), record['rt'], s=8)\n"
        "plt.xlabel('human uncertainty D'); plt.ylabel('model RT (step)');",
    ],
    "06_compare_your_model.ipynb": [
        "# 06 Compare your own model\n\nAny `torch.nn.Module` called as `model(frames)` with frames "
        "`(batch, steps, channels, H, W)`: name the modules to record, extract, and score it next to a zoo "
        "model on the same recording with a paired test.",
        "import tempfile\nfrom pathlib import Path\n\nimport torch\nfrom torch import nn\n\nimport "
        "data_adapters\nfrom workbench import simulators\nfrom workbench.metrics import encoding_score, summarize\nfrom workbench.models import "
        "BLNet, PresentationProtocol, extract\nfrom workbench.stats import compare_encodings\n\n\nclass "
        "MyNet(nn.Module):\n    \"\"\"A leaky recurrent conv layer, then a linear readout per step.\"\"\"\n\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 8, 3, "
        "padding=1)\n        self.lateral = nn.Conv2d(8, 8, 3, padding=1)\n        self.readout = "
        "nn.Linear(8, 10)\n\n    def forward(self, frames):\n        h, logits = 0, []\n        for t in "
        "range(frames.shape[1]):\n            h = torch.relu(self.conv(frames[:, t]) + (self.lateral(h) if "
        "t else 0))\n            logits.append(self.readout(h.mean((2, 3))))\n        return "
        "torch.stack(logits, 1)\n\n\ntorch.manual_seed(0)\nmine = MyNet().eval()",
        "simulation = simulators.simulate_macaque(Path(tempfile.mkdtemp()) / 'm.nc', n_stimuli=100, "
        "n_repetitions=8)\ntrials = data_adapters.load(simulation.path)\nprotocol = "
        "PresentationProtocol(onset_ms=50)\nmy_features = extract(mine, simulation.stimuli, layers=['conv'], "
        "protocol=protocol, progress=False)\nzoo_features = extract(BLNet.from_config(simulation.brain), "
        "simulation.stimuli, protocol=protocol, progress=False)\nmy_result = encoding_score(my_features, "
        "trials, n_splits=5, seed=0)\nzoo_result = encoding_score(zoo_features, trials, n_splits=5, seed=0)\n"
        "summarize(my_result).to_frame(), summarize(zoo_result).to_frame()",
        "comparison = compare_encodings(zoo_result, my_result, n_permutations=1000, alternative='greater')\n"
        "comparison.scores().to_frame()  # is the generating network better than mine, per region?",
        "## In a batch report\nSave `mine.state_dict()`, expose a function returning `MyNet()` and list it in "
        "a report config: `entry_point = \"mypackage.nets:build\"`, `weights = \"my_net.pt\"`, "
        "`layers = [\"conv\"]` (see the README, 'Batch report').",
    ],
}


def main():
    for name, cells in NOTEBOOKS.items():
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.cells = [nbformat.v4.new_markdown_cell(c) if c.startswith("#") or c.startswith("(")
                          else nbformat.v4.new_code_cell(c) for c in cells]
        for index, cell in enumerate(notebook.cells):
            cell.id = f"{name[:2]}-{index:02d}"  # stable ids: regenerating changes only what changed
        nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    main()
