"""sendmail's queue handed over to qmail: qf files as Debian's sendmail
8.17 writes them (MTA queue and submission queue), through Salt's loader,
into a stand-in qmail-queue that keeps what it is given (message on fd 0,
envelope on fd 1), applied for real and with test=True."""

import os
import stat

import pytest

# As written by Debian's sendmail-bin 8.17.1.9 (MTA queue, deferred).
QF_MTA = (
    b"V8\nT1796120467\nK1796120467\nN1\nP60257\n"
    b"MDeferred: Connection refused by ccs.cla.kobe-u.ac.jp.\nFs\n"
    b"$_localhost [127.0.0.1]\n$rESMTP\n$sprobe.cla.kobe-u.ac.jp\n${daemon_flags}\n"
    b"S<alice@probe.cla.kobe-u.ac.jp>\n"
    b"rRFC822; other@ccs.cla.kobe-u.ac.jp\nRPFD:<other@ccs.cla.kobe-u.ac.jp>\n"
    b"rRFC822; someone@ccs.cla.kobe-u.ac.jp\nRPFD:<someone@ccs.cla.kobe-u.ac.jp>\n"
    b"H?P?Return-Path: <\x81g>\n"
    b"H??Received: from probe.cla.kobe-u.ac.jp (localhost [127.0.0.1])\n"
    b"\tby probe.cla.kobe-u.ac.jp (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP"
    b" id 6B1AL7t3000206;\n\tTue, 1 Dec 2026 10:21:07 GMT\n"
    b"H??Date: Tue, 1 Dec 2026 10:21:07 GMT\nH??From: alice@probe.cla.kobe-u.ac.jp\n"
    b"H??Subject: one\nH??Message-ID: <m1@probe>\n.\n"
)
# The submission program's queue (mqueue-client) while the MTA was down.
QF_MSP = (
    b"V8\nT1796120477\nK1796120477\nN1\nP30017\nMDeferred: Connection refused by"
    b" [127.0.0.1]\nFs\n$_root@localhost\n${daemon_flags}c u\n"
    b"Sbob@probe.cla.kobe-u.ac.jp\nAbob@probe.cla.kobe-u.ac.jp\n"
    b"C:someone@ccs.cla.kobe-u.ac.jp\nrRFC822; someone@ccs.cla.kobe-u.ac.jp\n"
    b"RPFD:someone@ccs.cla.kobe-u.ac.jp\nH?P?Return-Path: <\x81g>\n"
    b"H??Received: (from root@localhost)\n\tby probe.cla.kobe-u.ac.jp"
    b" (8.17.1.9/8.17.1.9/Submit) id 6B1ALHLu000285\n"
    b"H?D?Date: Tue, 1 Dec 2026 10:21:17 GMT\nH?F?From: bob@probe.cla.kobe-u.ac.jp\n"
    b"H?M?Message-Id: <202612011021.6B1ALHLu000285@probe.cla.kobe-u.ac.jp>\n"
    b"H??Subject: two\n.\n"
)
PROGRAM = QF_MSP.replace(b"RPFD:someone@ccs.cla.kobe-u.ac.jp", b"RPFD:|/usr/bin/procmail")

FAKE_QMAIL_QUEUE = """#!/bin/sh
# Keeps message (fd 0) and envelope (fd 1) as qmail-queue would queue them.
n=$(ls {out} | grep -c mess)
cat > {out}/$n.mess
cat <&1 > {out}/$n.env
exit ${{QQ_EXIT:-0}}
"""


@pytest.fixture
def spool(tmp_path):
    """Two sendmail queues with one message each, one unparsable, and a
    stand-in qmail-queue."""
    mta, msp = tmp_path / "mqueue", tmp_path / "mqueue-client"
    for folder in (mta, msp):
        folder.mkdir()
    (mta / "qf6B1AL7t3000206").write_bytes(QF_MTA)
    (mta / "df6B1AL7t3000206").write_bytes(b"body line\n.dot\n")
    (msp / "qf6B1ALHLu000285").write_bytes(QF_MSP)
    (msp / "df6B1ALHLu000285").write_bytes(b"b2\n")
    (msp / "qf6B1ALHLu000999").write_bytes(PROGRAM)
    (msp / "df6B1ALHLu000999").write_bytes(b"b3\n")
    out = tmp_path / "queued"
    out.mkdir()
    home = tmp_path / "qmail"
    (home / "bin").mkdir(parents=True)
    (home / "queue" / "mess").mkdir(parents=True)
    qq = home / "bin" / "qmail-queue"
    qq.write_text(FAKE_QMAIL_QUEUE.format(out=out))
    qq.chmod(0o755)
    return {"queues": [str(mta), str(msp)], "qmail_queue": str(qq), "out": out,
            "mta": mta, "msp": msp, "lock": str(tmp_path / "lock")}


def test_parse_qf_keeps_envelope_and_headers(modules):
    parsed = modules.qmail_mqueue.parse_qf(QF_MTA)
    assert parsed["sender"] == b"alice@probe.cla.kobe-u.ac.jp"
    assert parsed["recipients"] == [b"other@ccs.cla.kobe-u.ac.jp",
                                    b"someone@ccs.cla.kobe-u.ac.jp"]
    assert parsed["headers"].startswith(b"Received: from probe.cla.kobe-u.ac.jp")
    assert b"Return-Path" not in parsed["headers"]
    assert b"\n\tTue, 1 Dec 2026 10:21:07 GMT\nDate: " in parsed["headers"]
    assert parsed["headers"].endswith(b"Message-ID: <m1@probe>\n")


@pytest.mark.parametrize("qf, reason", [
    (QF_MTA[:-2], "incomplete"),
    (PROGRAM, "program"),
    (QF_MSP.replace(b"H??Subject", b"H?${x}?Subject"), "macro"),
    (QF_MSP.replace(b"RPFD:someone@ccs.cla.kobe-u.ac.jp\n", b""), "no recipients"),
])
def test_parse_qf_refuses_what_it_cannot_hand_over_faithfully(modules, qf, reason):
    with pytest.raises(ValueError, match=reason):
        modules.qmail_mqueue.parse_qf(qf)


def test_handed_over(states, spool, test_mode):
    before = sorted(os.listdir(spool["mta"])) + sorted(os.listdir(spool["msp"]))
    ret = states.qmail_mqueue.handed_over(name="q", queues=spool["queues"],
                                          qmail_queue=spool["qmail_queue"],
                                          lock=spool["lock"], test=test_mode)
    assert ret.changes["handed_over"] == 2
    assert "qf6B1ALHLu000999" not in str(ret.changes)
    assert "1 message(s) stay in sendmail's queue" in ret.comment
    assert "6B1ALHLu000285" not in ret.comment.split("stay")[1]  # only the program one
    assert "|/usr/bin/procmail" in ret.comment
    if test_mode:
        assert ret.result is None and "2 message(s) would be handed over" in ret.comment
        assert sorted(os.listdir(spool["mta"])) + sorted(os.listdir(spool["msp"])) == before
        assert not os.listdir(spool["out"])
        return
    assert ret.result is True
    assert os.listdir(spool["mta"]) == []
    assert sorted(os.listdir(spool["msp"])) == ["df6B1ALHLu000999", "qf6B1ALHLu000999"]
    envelopes = sorted((spool["out"] / f"{n}.env").read_bytes() for n in (0, 1))
    assert envelopes == [
        b"Falice@probe.cla.kobe-u.ac.jp\0Tother@ccs.cla.kobe-u.ac.jp\0"
        b"Tsomeone@ccs.cla.kobe-u.ac.jp\0\0",
        b"Fbob@probe.cla.kobe-u.ac.jp\0Tsomeone@ccs.cla.kobe-u.ac.jp\0\0"]
    messages = [(spool["out"] / f"{n}.mess").read_bytes() for n in (0, 1)]
    mta = next(m for m in messages if b"Subject: one" in m)
    assert mta.startswith(b"Received: (from sendmail queue ")
    assert mta.endswith(b"Message-ID: <m1@probe>\n\nbody line\n.dot\n")
    # A second run finds nothing more to do.
    again = states.qmail_mqueue.handed_over(name="q", queues=spool["queues"],
                                            qmail_queue=spool["qmail_queue"],
                                            lock=spool["lock"])
    assert again.result is True and again.changes == {}


def test_refused_by_qmail_queue_stays_with_sendmail(states, spool, monkeypatch):
    monkeypatch.setenv("QQ_EXIT", "53")
    ret = states.qmail_mqueue.handed_over(name="q", queues=spool["queues"],
                                          qmail_queue=spool["qmail_queue"], lock=spool["lock"])
    assert ret.result is True and ret.changes == {}
    assert "qmail-queue refused it (exit 53" in ret.comment
    assert sorted(os.listdir(spool["mta"])) == ["df6B1AL7t3000206", "qf6B1AL7t3000206"]


def test_a_claim_found_in_qmails_queue_is_not_queued_twice(modules, spool):
    """The hand-over process died after qmail-queue, before removing the claim."""
    os.rename(spool["mta"] / "qf6B1AL7t3000206", spool["mta"] / "qmail-claimed-6B1AL7t3000206")
    home = os.path.dirname(os.path.dirname(spool["qmail_queue"]))
    queued = os.path.join(home, "queue", "mess", "1", "4242")
    os.makedirs(os.path.dirname(queued))
    with open(queued, "wb") as handle:
        handle.write(f"Received: (from sendmail queue {spool['mta']} id 6B1AL7t3000206)\n"
                     "\tby x (qmail formula hand-over); now\n".encode())
    done = modules.qmail_mqueue.handover(spool["queues"][:1], spool["qmail_queue"],
                                         lock=spool["lock"])
    assert done["handed_over"] == [{"queue": spool["queues"][0], "id": "6B1AL7t3000206"}]
    assert not os.listdir(spool["out"])  # not given to qmail-queue again
    assert os.listdir(spool["mta"]) == []


def test_without_qmail_queue_nothing_moves(states, spool):
    os.chmod(spool["qmail_queue"], stat.S_IRUSR)
    ret = states.qmail_mqueue.handed_over(name="q", queues=spool["queues"],
                                          qmail_queue=spool["qmail_queue"], lock=spool["lock"])
    assert ret.result is True and ret.changes == {}
    assert "2 message(s) wait in sendmail's queue until qmail" in ret.comment
    assert len(os.listdir(spool["mta"])) == 2


def test_status_lists_what_stays(modules, spool):
    info = modules.qmail_mqueue.status(spool["queues"] + ["/nonexistent"])
    assert set(info) == set(spool["queues"])
    assert info[spool["queues"][1]]["messages"] == 2
    assert [k["id"] for k in info[spool["queues"][1]]["kept"]] == ["6B1ALHLu000999"]


FAKE_SENDMAIL = """#!/bin/sh
# Keeps its arguments and the message, as sendmail would queue them.
n=$(ls {out} | grep -c args)
echo "$@" > {out}/$n.args
cat > {out}/$n.mess
"""


@pytest.fixture
def qmail_queue(tmp_path):
    """A qmail queue (qmail-send's layout) with a preprocessed message (one
    recipient done), an unprocessed one (todo + intd) and one whose bounce is
    pending; and a stand-in sendmail."""
    home = tmp_path / "qmail"
    queue = home / "queue"

    def put(part, name, data):
        path = queue / part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    put("mess/5", "123", b"Subject: a\n\nA\n")
    put("info/5", "123", b"Falice@x\0")
    put("remote/5", "123", b"Tbob@spool\0Dcarol@spool\0")
    put("mess/7", "456", b"Subject: b\n\nB\n")
    put("todo", "456", b"")
    put("intd", "456", b"u0\0p42\0F\0Tdave@spool\0\0")
    put("mess/1", "789", b"Subject: c\n\nC\n")
    put("info/1", "789", b"Feve@x\0")
    put("bounce", "789", b"<eve@x>:\nno\n")
    out = tmp_path / "given"
    out.mkdir()
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(FAKE_SENDMAIL.format(out=out))
    sendmail.chmod(0o755)
    return {"home": str(home), "queue": queue, "sendmail": str(sendmail), "out": out,
            "lock": str(tmp_path / "lock")}


def test_handed_back_to_sendmail(states, qmail_queue, test_mode):
    q = qmail_queue
    ret = states.qmail_mqueue.handed_back(name=q["home"], sendmail=q["sendmail"],
                                          lock=q["lock"], test=test_mode)
    assert ret.changes == {"handed_back": 2}
    if test_mode:
        assert ret.result is None and "2 message(s) would be given to sendmail" in ret.comment
        assert not os.listdir(q["out"]) and (q["queue"] / "mess/5/123").exists()
        return
    assert ret.result is True
    assert "message 789 stays: a bounce is pending" in ret.comment
    given = sorted(((q["out"] / f"{n}.args").read_text(), (q["out"] / f"{n}.mess").read_bytes())
                   for n in (0, 1))
    assert given == [("-oi -f <> -- dave@spool\n", b"Subject: b\n\nB\n"),
                     ("-oi -f alice@x -- bob@spool\n", b"Subject: a\n\nA\n")]
    left = sorted(str(p.relative_to(q["queue"])) for p in q["queue"].rglob("*") if p.is_file())
    assert left == ["bounce/789", "info/1/789", "mess/1/789"]
