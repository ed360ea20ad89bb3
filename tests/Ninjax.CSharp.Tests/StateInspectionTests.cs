using System.Text.RegularExpressions;
using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>The state utilities and the summary from C#, agreeing with the F# StateOps and Summary they forward to.</summary>
public class StateInspectionTests
{
    private static State Sample() => States.From(
        ("model/gen/w", ones(2, 3)), ("model/gen/b", zeros(3)), ("model/disc/w", ones(3, 1)), ("model/opt/count", tensor(4L)));

    [Fact]
    public void Selecting_by_prefix_and_pattern()
    {
        var state = Sample();
        Assert.Equal(new[] { "model/gen/b", "model/gen/w", "model/opt/count" }, state.SelectPrefixes("model/gen", "model/opt").Keys);
        Assert.Equal(new[] { "model/disc/w", "model/gen/w" }, state.SelectPattern("/w$").Keys);
        Assert.Equal(new[] { "model/disc/w" }, state.SelectRegex(new Regex("^model/disc")).Keys);
        var bad = Raises<ArgumentException>(() => state.SelectPattern("(unclosed"));
        Assert.Contains("'(unclosed'", bad.Message);
    }

    [Fact]
    public void Merging_disjoint_or_with_a_resolver()
    {
        var a = States.From(("x", ones(1)), ("y", ones(1)));
        var b = States.From(("y", full(1, 3f)), ("z", ones(1)));
        var clash = Raises<ArgumentException>(() => a.MergeDisjoint(b));
        Assert.Contains("'y'", clash.Message);
        Assert.Contains("Use Merge to let the right one win", clash.Message);
        var averaged = a.MergeWith(b, (key, left, right) => (left + right) / 2);
        Assert.Equal(new[] { "x", "y", "z" }, averaged.Keys);
        SameTensor(full(1, 2f), averaged["y"], "resolved");
        Assert.Equal(new[] { "x", "z" }, States.From(("x", ones(1))).MergeDisjoint(States.From(("z", ones(1)))).Keys);
    }

    [Fact]
    public void Diff_reports_added_removed_and_changed_keys()
    {
        var before = Sample();
        var after = before.Without("model/gen/b").With("model/new", ones(1))
            .With("model/gen/w", full(new long[] { 2, 3 }, 1.5f)).With("model/disc/w", ones(3, 2)).With("model/opt/count", tensor(4.0));
        var diff = before.Diff(after);
        Assert.False(diff.IsEmpty);
        Assert.Equal(new[] { "model/new" }, diff.Added);
        Assert.Equal(new[] { "model/gen/b" }, diff.Removed);
        Assert.Equal(0.5, diff.MaxAbsChange, 12);
        var changes = diff.Changed.ToDictionary(c => c.Key, c => c.Change);
        Assert.Equal(0.5, Assert.IsType<EntryChange.ValuesChanged>(changes["model/gen/w"]).MaxAbsChange, 12);
        var shape = Assert.IsType<EntryChange.ShapeChanged>(changes["model/disc/w"]);
        Assert.Equal(new long[] { 3, 1 }, shape.Before);
        Assert.Equal(new long[] { 3, 2 }, shape.After);
        Assert.Equal(ScalarType.Float64, Assert.IsType<EntryChange.DtypeChanged>(changes["model/opt/count"]).After);
        Assert.True(before.Diff(Sample()).IsEmpty);
        Assert.Equal(before.Keys, before.Diff(Sample()).Unchanged);
    }

    [Fact]
    public void Moving_and_casting()
    {
        var state = Sample();
        var onCpu = state.ToDevice(CPU);
        foreach (var key in state.Keys) Assert.Same(state[key], onCpu[key]);
        var doubles = state.CastFloating(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, doubles["model/gen/w"].dtype);
        Assert.Equal(ScalarType.Int64, doubles["model/opt/count"].dtype);
        var e = Raises<ArgumentException>(() => state.CastFloating(ScalarType.Int32));
        Assert.StartsWith("CastFloating needs a floating-point dtype", e.Message);
    }

    [Fact]
    public void The_summary_renders_and_gives_its_rows_and_totals()
    {
        var state = Sample();
        var text = state.Summary();
        Assert.Equal(Summary.render(state), text);
        Assert.Contains("[2, 3]", text);
        var rows = state.SummaryRows();
        Assert.Equal("model", rows[0].Path);
        Assert.True(rows[0].IsModuleRow);
        var entry = rows.OfType<SummaryRow.EntryRow>().First(r => r.Path == "model/gen/w");
        Assert.Equal(2, entry.Depth);
        Assert.Equal(6, entry.Totals.Elements);
        Assert.Equal(new long[] { 2, 3 }, entry.Shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, entry.DType);
        Assert.Equal(EntryKind.Unclassified, entry.Kind);
        Assert.Null(rows[0].Shape);
        Assert.Null(rows[0].DType);
        Assert.Null(rows[0].Kind);
        var totals = state.Totals();
        Assert.Equal(4, totals.Entries);
        Assert.Equal(6 + 3 + 3 + 1, totals.Elements);
        Assert.Equal(0, totals.Parameters); // without the model nothing is known to be a parameter
    }

    [Fact]
    public void Given_the_model_the_summary_counts_trainable_parameters_apart()
    {
        var model = new CsOptModel(Optimizers.Adam(1e-3));
        var state = Nj.Init(model.Train)(States.Empty, ones(4, 8), ones(4, 3), seed: 0);
        var totals = state.Totals(model);
        // Dense 8->16 and 16->3 with biases, and the bias of 3: the optimizer's moments are not parameters.
        Assert.Equal(8 * 16 + 16 + 16 * 3 + 3 + 3, totals.Parameters);
        Assert.True(totals.Elements > totals.Parameters);
        Assert.Equal(Summary.renderOf(model, state), state.Summary(model));
        Assert.Contains(state.SummaryRows(model).OfType<SummaryRow.EntryRow>(), r => r.Path == "model/opt/count");
    }
}
